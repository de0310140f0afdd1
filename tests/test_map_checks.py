"""Map checks against independent references: a direct computation of the deletion curve on a linear softmax
model, scipy's Spearman correlation, analytic pointing-game cases; the model and the global RNG left as found."""

import math

import numpy as np
import pytest
import scipy.stats
import torch
from torch import nn

from helpers import assert_same_state, model_state

from tb_cnnviz.methods import (
    deletion_curve,
    mass_in_mask,
    pointing_game,
    random_maps,
    randomizable_layers,
    randomization_check,
    spearman,
)


def linear_softmax_model(channels=2, size=5, classes=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * size * size, classes)).double()


def direct_curve(model, image, target, importance, steps, mode, baseline):
    """The curve the obvious way: sort the pixels by hand, blank them one step at a time, one image at a time,
    the softmax computed in numpy from the layer's weights."""
    weight = model[1].weight.detach().numpy()
    bias = model[1].bias.detach().numpy()
    values = importance.numpy().ravel()
    order = sorted(range(len(values)), key=lambda p: (-values[p], p))
    x = image.numpy()
    channels, height, width = x.shape
    probabilities, fractions = [], []
    for k in range(steps + 1):
        count = int(math.floor(k * len(values) / steps + 0.5))
        chosen = np.zeros(len(values), bool)
        chosen[order[:count]] = True
        chosen = chosen.reshape(height, width)
        if mode == "deletion":
            shown = np.where(chosen, baseline, x)
        else:
            shown = np.where(chosen, x, baseline)
        logits = weight @ shown.ravel() + bias
        p = np.exp(logits - logits.max())
        probabilities.append(p[target] / p.sum())
        fractions.append(count / len(values))
    auc = sum((fractions[i + 1] - fractions[i]) * (probabilities[i + 1] + probabilities[i]) / 2 for i in range(steps))
    return np.array(fractions), np.array(probabilities), auc


@pytest.mark.parametrize("mode", ["deletion", "insertion"])
@pytest.mark.parametrize("steps", [4, 7, 25])
def test_deletion_curve_equals_a_direct_computation_on_a_linear_softmax_model(mode, steps):
    model = linear_softmax_model()
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(3, 2, 5, 5, generator=generator, dtype=torch.float64)
    maps = torch.randn(3, 5, 5, generator=generator, dtype=torch.float64).round(decimals=0)  # many ties
    targets = torch.tensor([0, 2, 1])
    curve = deletion_curve(model, images, targets, maps, steps=steps, mode=mode, baseline=0.3, batch_size=5)
    assert curve.fractions.shape == (steps + 1,) and curve.probability.shape == (steps + 1, 3) and curve.auc.shape == (3,)
    for n in range(3):
        fractions, probabilities, auc = direct_curve(model, images[n], targets[n].item(), maps[n], steps, mode, 0.3)
        np.testing.assert_allclose(curve.fractions.numpy(), fractions, rtol=0, atol=1e-7)
        np.testing.assert_allclose(curve.probability[:, n].numpy(), probabilities, rtol=1e-5, atol=1e-7)
        assert curve.auc[n].item() == pytest.approx(auc, rel=1e-5)


def test_deletion_curve_reads_a_channel_map_as_max_abs_and_defaults_to_the_predicted_class():
    model = linear_softmax_model()
    images = torch.randn(2, 2, 5, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    signed = torch.randn(2, 2, 5, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    per_pixel = signed.abs().amax(dim=1)
    predicted = model(images).argmax(dim=1)
    ours = deletion_curve(model, images, None, signed, steps=5)
    reference = deletion_curve(model, images, predicted, per_pixel, steps=5)
    torch.testing.assert_close(ours.probability, reference.probability, rtol=0, atol=0)


def test_insertion_ends_and_deletion_starts_at_the_whole_images_probability():
    model = linear_softmax_model()
    images = torch.randn(2, 2, 5, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    whole = model(images).softmax(dim=1)[:, 1].detach().float()  # probabilities come back as float32
    maps = random_maps(images, seed=5)
    torch.testing.assert_close(deletion_curve(model, images, 1, maps, steps=3).probability[0], whole)
    torch.testing.assert_close(deletion_curve(model, images, 1, maps, steps=3, mode="insertion").probability[-1], whole)


def test_deletion_curve_leaves_the_model_as_found():
    model = linear_softmax_model()
    model.train()
    model[1].weight.grad = torch.ones_like(model[1].weight)
    images = torch.randn(2, 2, 5, 5, dtype=torch.float64)
    before = model_state(model)
    deletion_curve(model, images, 0, random_maps(images), steps=4)
    assert_same_state(before, model_state(model))


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"maps": torch.zeros(2, 4, 4)}, ValueError, "pixels"),
        ({"maps": torch.zeros(3, 5, 5)}, ValueError, "one per image"),
        ({"maps": [[0.0]]}, TypeError, "maps must be a torch.Tensor"),
        ({"steps": 0}, ValueError, "steps"),
        ({"mode": "erase"}, ValueError, "deletion, insertion"),
        ({"baseline": torch.zeros(3, 1, 1)}, ValueError, "baseline"),
        ({"baseline": "grey"}, TypeError, "baseline"),
    ],
)
def test_deletion_curve_names_bad_input(kwargs, error, words):
    model = linear_softmax_model().float()
    arguments = {"maps": torch.zeros(2, 5, 5), **kwargs}
    with pytest.raises(error, match=words):
        deletion_curve(model, torch.zeros(2, 2, 5, 5), 0, **arguments)


def test_spearman_ranks_a_nan_above_every_number_and_a_flat_map_at_zero():
    """One broken pixel must not make a map read as changed (0) in the sanity check: NaN ranks as the largest
    value (as a sort puts it), so the answer equals that of the map with +inf there."""
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(3, 40, generator=generator)
    b = a + 0.2 * torch.rand(3, 40, generator=generator)
    broken, largest = a.clone(), a.clone()
    broken[0, 5], largest[0, 5] = float("nan"), float("inf")
    torch.testing.assert_close(spearman(broken, b), spearman(largest, b))
    assert spearman(broken, b)[0].item() > 0.5
    assert spearman(torch.ones(3, 40), b).tolist() == [0.0, 0.0, 0.0]


def test_spearman_equals_scipy_with_ties():
    generator = torch.Generator().manual_seed(0)
    a = torch.randint(0, 6, (4, 50), generator=generator).float()  # heavy ties
    b = a + torch.randn(4, 50, generator=generator) * 2
    b[1] = torch.randint(0, 3, (50,), generator=generator).float()
    ours = spearman(a, b)
    for n in range(4):
        assert ours[n].item() == pytest.approx(scipy.stats.spearmanr(a[n], b[n]).statistic, abs=1e-6)
    assert spearman(a, torch.ones(4, 50)).tolist() == [0.0] * 4  # constant: no ranking, similarity 0


def test_pointing_game_and_mass_in_mask_on_cases_worked_by_hand():
    maps = torch.zeros(3, 6, 6)
    maps[0, 1, 1] = 5.0  # the peak on the object
    maps[1, 4, 4] = 5.0  # the peak two pixels off it
    maps[2] = 1.0  # flat: the first pixel (0, 0) is the peak
    maps[2, 2, 2] = -3.0
    masks = torch.zeros(3, 6, 6, dtype=torch.bool)
    masks[:, 0:3, 0:3] = True
    masks[1, 0:3, 0:3] = True
    assert pointing_game(maps, masks).tolist() == [True, False, True]
    assert pointing_game(maps, masks, tolerance=2).tolist() == [True, True, True]
    assert pointing_game(maps, masks, tolerance=1).tolist() == [True, False, True]
    shares = mass_in_mask(maps, masks)
    assert shares.tolist() == pytest.approx([1.0, 0.0, 8 / 35])  # map 2: 8 of its 35 positive units inside
    gradient_map = torch.zeros(1, 3, 6, 6)
    gradient_map[0, 2, 5, 5] = -9.0  # a channel map counts |.|
    assert pointing_game(gradient_map, masks[:1]).tolist() == [False]
    assert mass_in_mask(torch.zeros(1, 6, 6), masks[:1]).tolist() == [0.0]
    with pytest.raises(ValueError, match="masks must be"):
        pointing_game(maps, masks[:, :5])
    with pytest.raises(ValueError, match="tolerance"):
        pointing_game(maps, masks, tolerance=-1)


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(4, 3)
        self.unused = nn.Linear(4, 4)

    def forward(self, x):
        return self.head(self.relu(self.conv2(self.relu(self.conv1(x)))).mean(dim=(2, 3)))


def test_randomizable_layers_run_from_the_logits_down_and_skip_what_never_runs():
    torch.manual_seed(0)
    assert randomizable_layers(SmallNet(), torch.randn(1, 3, 8, 8)) == ["head", "conv2", "conv1"]


def test_randomization_check_leaves_the_model_and_the_rng_as_found():
    torch.manual_seed(0)
    model = SmallNet().train()
    model.conv1.weight.grad = torch.ones_like(model.conv1.weight)
    weights = {name: p.detach().clone() for name, p in model.named_parameters()}
    images = torch.randn(2, 3, 8, 8)
    before = model_state(model)
    check = randomization_check(model, images, None, "saliency", seed=3)
    assert_same_state(before, model_state(model))
    for name, p in model.named_parameters():
        assert torch.equal(p, weights[name]), name
    assert check.layers == ["head", "conv2", "conv1"] and check.similarity.shape == (3, 2)
    again = randomization_check(model, images, None, "saliency", seed=3)
    assert torch.equal(check.similarity, again.similarity)  # its own seeded generator


def test_randomization_check_similarity_is_spearman_of_maps_from_a_model_rebuilt_by_hand():
    """The independent variant against maps made by hand on a copy whose one layer is re-drawn."""
    import copy

    from tb_cnnviz.methods import saliency
    from tb_cnnviz.methods.checks.randomization import redraw

    torch.manual_seed(0)
    model = SmallNet()
    images = torch.randn(2, 3, 8, 8)
    targets = torch.tensor([0, 2])
    check = randomization_check(model, images, targets, "saliency", layers=["conv2", "head"], seed=7, cascading=False)
    generator = torch.Generator().manual_seed(7)
    trained = saliency(model, images, targets).abs().amax(dim=1).flatten(1)
    for row, name in enumerate(["conv2", "head"]):
        rebuilt = copy.deepcopy(model)
        redraw(dict(rebuilt.named_modules())[name], generator)
        fan_in = dict(model.named_modules())[name].weight[0].numel()
        assert dict(rebuilt.named_modules())[name].weight.abs().max() <= 1 / math.sqrt(fan_in)
        randomized = saliency(rebuilt, images, targets).abs().amax(dim=1).flatten(1)
        for n in range(2):
            expected = scipy.stats.spearmanr(trained[n], randomized[n]).statistic
            assert check.similarity[row, n].item() == pytest.approx(expected, abs=1e-5)


def test_a_cascade_compared_at_fewer_layers_redraws_every_layer_and_reads_the_full_cascade_there():
    """Cascading re-draws every layer in order, so the map after re-drawing down to conv1 compared at 2 layers
    is the one the full cascade compares there, by hand on a copy re-drawn in the same order."""
    import copy

    from tb_cnnviz.methods import saliency
    from tb_cnnviz.methods.checks.randomization import redraw

    torch.manual_seed(0)
    model = SmallNet()
    images = torch.randn(2, 3, 8, 8)
    targets = torch.tensor([1, 2])
    sampled = randomization_check(model, images, targets, "saliency", seed=3, at_most=2)
    assert sampled.layers == ["head", "conv1"] and sampled.similarity.shape == (2, 2)
    rebuilt, generator = copy.deepcopy(model), torch.Generator().manual_seed(3)
    trained = saliency(model, images, targets).abs().amax(dim=1).flatten(1)
    for name in ["head", "conv2", "conv1"]:
        redraw(dict(rebuilt.named_modules())[name], generator)
    randomized = saliency(rebuilt, images, targets).abs().amax(dim=1).flatten(1)
    for n in range(2):
        expected = scipy.stats.spearmanr(trained[n], randomized[n]).statistic
        assert sampled.similarity[1, n].item() == pytest.approx(expected, abs=1e-5)


def test_randomization_check_names_bad_input():
    model = SmallNet()
    images = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match="method must be one of"):
        randomization_check(model, images, 0, "lime")
    with pytest.raises(ValueError, match="has no layer 'conv9'"):
        randomization_check(model, images, 0, "saliency", layers=["conv9"])
    with pytest.raises(ValueError, match="no parameters"):
        randomization_check(model, images, 0, "saliency", layers=["relu"])
    with pytest.raises(TypeError, match="bind them"):
        randomization_check(model, images, 0, lambda m, x, t: x, smooth=True)


def test_occlusion_importance_averages_the_windows_over_each_pixel_by_hand():
    from tb_cnnviz.methods.checks.importance import occlusion_importance

    probabilities = torch.tensor([[[0.9, 0.1], [0.5, 0.3]]])  # 2x2 grid, window 3, stride 2 on a 6x6 image
    pixels = occlusion_importance(probabilities, 6, 6, window=3, stride=2)
    assert pixels[0, 0, 0].item() == pytest.approx(-0.9)  # under the first window only
    assert pixels[0, 2, 2].item() == pytest.approx(-(0.9 + 0.1 + 0.5 + 0.3) / 4)  # under all four
    assert pixels[0, 0, 2].item() == pytest.approx(-(0.9 + 0.1) / 2)
    assert pixels[0, 5, 0].item() == float("-inf") and pixels[0, 0, 5].item() == float("-inf")  # never covered


def test_check_map_runs_every_check_and_its_verdicts_follow_the_numbers():
    from tb_cnnviz.methods import SANITY_THRESHOLD, check_map, saliency

    torch.manual_seed(0)
    model = SmallNet()
    images = torch.randn(3, 3, 8, 8)
    targets = torch.tensor([0, 1, 2])
    maps = saliency(model, images, targets)
    masks = torch.zeros(3, 8, 8, dtype=torch.bool)
    masks[:, 2:6, 2:6] = True
    before = model_state(model)
    found = check_map(model, images, targets, "saliency", maps, masks=masks, steps=4)
    assert_same_state(before, model_state(model))
    assert found.randomization.layers == ["head", "conv2", "conv1"] and found.deletion.probability.shape == (5, 3)
    assert torch.equal(found.pointing, pointing_game(maps, masks)) and torch.equal(found.mass, mass_in_mask(maps, masks))
    # each curve as deletion_curve draws it alone (the forwards are shared, in other batches: float rounding)
    close = {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(found.deletion.probability, deletion_curve(model, images, targets, maps, steps=4).probability, **close)
    torch.testing.assert_close(found.insertion.probability,
                               deletion_curve(model, images, targets, maps, steps=4, mode="insertion").probability, **close)
    torch.testing.assert_close(found.random_deletion.probability,
                               deletion_curve(model, images, targets, random_maps(images), steps=4).probability, **close)
    # the random insertion reveals the pixels in the reverse of the random deletion's order
    torch.testing.assert_close(found.random_insertion.probability,
                               deletion_curve(model, images, targets, -random_maps(images), steps=4, mode="insertion").probability,
                               **close)
    assert found.sane.tolist() == (found.randomization.similarity.mean(dim=0) < SANITY_THRESHOLD).tolist()
    expected = [(found.deletion.auc[n] < found.random_deletion.auc[n]) and (found.insertion.auc[n] > found.random_insertion.auc[n])
                for n in range(3)]
    assert found.beats_random.tolist() == [bool(e) for e in expected]
