"""Top activating images and patches against a brute-force pass that stores every activation."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import io

import numpy as np
from PIL import Image

from helpers import assert_same_state, get_json, model_state, tensorboard_client

from tb_cnnviz import CNNViz

from tb_cnnviz.methods import random_directions, receptive_field, top_activations


@pytest.fixture
def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 6, 3, padding=1), nn.ReLU())


def dataset(count=40, size=16, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(count, 3, size, size, generator=generator), torch.randint(0, 5, (count,), generator=generator)


def batches(images, labels, size, offset=0):
    for start in range(0, len(images), size):
        end = start + size
        yield images[start:end], labels[start:end], torch.arange(start, min(end, len(images))) + offset


def brute_force(net, images, layer_index, k, directions=None):
    """Every activation stored; per unit, images ranked by their strongest position, found by a scan."""
    with torch.no_grad():
        maps = net[: layer_index + 1](images)
    if directions is not None:
        maps = torch.einsum("bchw,dc->bdhw", maps, directions)
    result = []
    for unit in range(maps.shape[1]):
        per_image = []
        for n in range(len(images)):
            plane = maps[n, unit]
            best, where = -float("inf"), None
            for i in range(plane.shape[0]):
                for j in range(plane.shape[1]):
                    if plane[i, j] > best:
                        best, where = plane[i, j].item(), (i, j)
            per_image.append((best, n, where))
        result.append(sorted(per_image, key=lambda item: -item[0])[:k])
    return result


def naive_patch(image, box):
    """Crop (top, left, bottom, right) with zeros outside the image."""
    top, left, bottom, right = box
    pad = max(0, -top, -left, bottom - image.shape[1], right - image.shape[2])
    padded = F.pad(image, (pad, pad, pad, pad))
    return padded[:, top + pad : bottom + pad, left + pad : right + pad]


@pytest.mark.parametrize("cut_every_slot", [False, True])
def test_equal_to_brute_force_with_patches(net, cut_every_slot):
    images, labels = dataset()
    before = model_state(net)
    top = top_activations(net, batches(images, labels, 7, offset=100), "3", k=5, cut_every_slot=cut_every_slot, whole_size=8)
    assert_same_state(before, model_state(net))
    assert top.input_size == (16, 16) and top.wholes.shape == (6, 5, 3, 8, 8)
    field = receptive_field(net, "3")
    assert field.size == (10, 10) and top.patches.shape == (6, 5, 3, 10, 10)
    for unit, expected in enumerate(brute_force(net, images, 3, 5)):
        torch.testing.assert_close(top.values[unit], torch.tensor([value for value, _, _ in expected]))
        assert top.image[unit].tolist() == [n + 100 for _, n, _ in expected]  # the data's own index
        assert [tuple(p) for p in top.position[unit].tolist()] == [where for _, _, where in expected]
        for slot, (_, n, where) in enumerate(expected):
            patch = (naive_patch(images[n], field.box(*where)) * 255).round().to(torch.uint8)
            assert (top.patches[unit, slot].int() - patch.int()).abs().max() <= 1
            whole = (images[n].view(3, 8, 2, 8, 2).mean(dim=(2, 4)) * 255).round().to(torch.uint8)  # 2x2 averages
            assert (top.wholes[unit, slot].int() - whole.int()).abs().max() <= 1


def test_directions_rank_projections(net):
    images, labels = dataset(count=24)
    directions = random_directions(6, 3, seed=4)
    assert torch.allclose(directions.norm(dim=1), torch.ones(3))
    rng = torch.get_rng_state()
    assert torch.equal(random_directions(6, 3, seed=4), directions) and torch.equal(torch.get_rng_state(), rng)
    top = top_activations(net, batches(images, labels, 5), "4", k=3, directions=directions)
    for unit, expected in enumerate(brute_force(net, images, 4, 3, directions)):
        assert top.image[unit].tolist() == [n for _, n, _ in expected]
        torch.testing.assert_close(top.values[unit], torch.tensor([v for v, _, _ in expected]), rtol=1e-5, atol=1e-6)
    axis = top_activations(net, batches(images, labels, 5), "4", k=3, directions=torch.eye(6)[[2, 4]])
    channels = top_activations(net, batches(images, labels, 5), "4", k=3)
    assert torch.equal(axis.image, channels.image[[2, 4]])


def test_fewer_images_than_k_leave_empty_slots_and_bad_input_is_named(net):
    images, labels = dataset(count=3)
    top = top_activations(net, [images], "3", k=5)
    assert (top.image[:, 3:] == -1).all() and torch.isinf(top.values[:, 3:]).all()
    with pytest.raises(ValueError, match="k must be a positive int"):
        top_activations(net, [images], "3", k=0)
    with pytest.raises(ValueError, match=r"directions must be \(D, 6\)"):
        top_activations(net, [images], "3", directions=torch.ones(2, 5))
    with pytest.raises(ValueError, match="has no layer 'conv9'"):
        top_activations(net, [images], "conv9")


def test_logged_top_patches_read_back_through_tensorboard(net, tmp_path):
    images, labels = dataset()
    data = list(batches(images, labels, 8))
    with CNNViz(net, tmp_path / "run", raise_errors=True, max_channels=4) as viz:
        assert viz.log_top_activations(data, "3", 2, k=3, directions=5) == ["3", "3 (random directions)"]
        with pytest.raises(ValueError, match="directions need data that can be read twice"):
            viz.log_top_activations(iter(data), "3", 3, directions=2)
        with pytest.raises(ValueError, match=r"channels \[9\] are out of range: layer '3' has 6 channels"):
            viz.log_top_activations(data, "3", 3, channels=[1, 9])
    reference = top_activations(net, data, "3", k=3, patch_size=32)
    client = tensorboard_client(tmp_path, "false")
    _, runs = get_json(client, "runs")
    assert runs["runs"][0]["top_activations"] == ["3", "3 (random directions)"]
    _, sample = get_json(client, "sample", run="run", kind="top", layer="3", step=2)
    meta = sample["meta"]
    assert meta["units_total"] == 6 and [u["unit"] for u in meta["units"]] == [0, 1, 2, 3]  # max_channels
    for unit in meta["units"]:
        assert unit["images"] == reference.image[unit["unit"]].tolist()
        np.testing.assert_allclose(unit["values"], reference.values[unit["unit"]].numpy(), rtol=1e-3)
    sprite = np.asarray(Image.open(io.BytesIO(client.get("/data/plugin/cnnviz/blob",
                                                         query_string={"run": "run", "key": sample["blobs"][0]}).data)))
    tile = meta["tile"]
    assert (tile["rows"], tile["cols"]) == (4, 3) and sprite.shape[:2] == (4 * 33 - 1, 3 * 33 - 1)
    row, slot = 2, 1  # channel 2's second image: the sprite holds exactly its patch
    np.testing.assert_array_equal(sprite[row * 33 : row * 33 + 32, slot * 33 : slot * 33 + 32],
                                  reference.patches[2, 1].permute(1, 2, 0).numpy())
    _, directions = get_json(client, "sample", run="run", kind="top", layer="3 (random directions)", step=2)
    assert directions["meta"]["axes"] == "directions" and len(directions["meta"]["units"]) == 5


class ResidualBlock(nn.Module):
    """torchvision's BasicBlock in small: the batch norm's output is added to in place, then ReLU'd in place."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.bn(self.conv(x))
        out += x
        return self.relu(out)


def test_a_layer_whose_output_is_changed_in_place_later_is_ranked_by_its_own_values():
    torch.manual_seed(0)
    block = ResidualBlock().eval()
    images = torch.randn(12, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        own = block.bn(block.conv(images))  # what the layer gave, before `out += x` and the ReLU changed it
    top = top_activations(block, [images[:5], images[5:]], "bn", k=3)
    best = own.flatten(2).max(dim=2).values  # (N, C)
    values, order = best.T.topk(3, dim=1)
    assert torch.equal(top.image, order)
    torch.testing.assert_close(top.values, values)


class _Flattening(nn.Module):
    """A classic hand-written net: ``.view`` flattens a 4x4 map, which fails on channels-last memory."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 5, padding=2), nn.ReLU(), nn.MaxPool2d(4), nn.Conv2d(8, 6, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x):
        return self.fc(self.features(x).view(x.size(0), -1))


class _LayoutChecking(_Flattening):
    """Checks the memory layout itself (an assert, not a RuntimeError) and flattens with reshape."""

    def forward(self, x):
        assert x.is_contiguous(), "this net takes contiguous NCHW input"
        return self.fc(self.features(x).reshape(x.size(0), -1))


@pytest.mark.parametrize("net_class", [_Flattening, _LayoutChecking])
@pytest.mark.parametrize("rank", ["activation", "relevance"])
def test_a_net_that_views_its_maps_is_ranked_as_given_after_its_first_batch_fails(rank, net_class):
    torch.manual_seed(0)
    net = net_class()
    images, labels = dataset()
    with pytest.raises((RuntimeError, AssertionError), match="view|contiguous"):
        net(images.contiguous(memory_format=torch.channels_last))  # the layout the CPU pass tries first
    top = top_activations(net, batches(images, labels, 7), "features.3", k=5, rank=rank)
    if rank == "activation":
        expected = brute_force(net.features, images, 3, 5)
        for unit, rows in enumerate(expected):
            torch.testing.assert_close(top.values[unit], torch.tensor([value for value, _, _ in rows]))
            assert top.image[unit].tolist() == [n for _, n, _ in rows]
    else:  # activation x gradient of the label's score, summed over the map: by autograd on the whole set
        maps = net.features(images).detach().requires_grad_(True)
        scores = net.fc(maps.reshape(len(images), -1))
        (gradient,) = torch.autograd.grad(scores.gather(1, labels[:, None]).sum(), maps)
        relevance = (maps * gradient).sum(dim=(2, 3)).detach()
        expected_values, expected_images = relevance.T.topk(5, dim=1)
        torch.testing.assert_close(top.values, expected_values, rtol=1e-4, atol=1e-5)
        assert top.image.tolist() == expected_images.tolist()


def test_the_activation_ranking_stops_each_forward_after_its_layer(net):
    """Nothing after the ranked layer is needed: a module after it never runs, and the ranking still equals
    the brute force; the relevance ranking needs the class scores, so it runs every forward whole."""
    runs = []
    counted = nn.Sequential(*net, nn.Flatten(), nn.LazyLinear(5))
    counted[-1].register_forward_pre_hook(lambda _module, _inputs: runs.append(1))
    images, labels = dataset()
    counted(images[:1])  # the lazy layer takes its shape
    runs.clear()
    top = top_activations(counted, batches(images, labels, 7), "3", k=5)
    assert runs == []
    for unit, expected in enumerate(brute_force(net, images, 3, 5)):
        torch.testing.assert_close(top.values[unit], torch.tensor([value for value, _, _ in expected]))
    top_activations(counted, batches(images, labels, 7), "3", k=5, rank="relevance")
    assert len(runs) == 6  # every batch


def test_a_reused_module_is_ranked_at_the_named_call_and_the_forward_stops_after_it():
    """``relu`` runs twice: ``relu#1`` is ranked on the first call's maps, though the second runs later."""
    torch.manual_seed(0)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2, self.relu = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()

        def forward(self, x):
            return self.relu(self.conv2(self.relu(self.conv1(x)))).mean(dim=(2, 3))

    model = Twice()
    runs = []
    model.conv2.register_forward_pre_hook(lambda _module, _inputs: runs.append(1))
    images, labels = dataset()
    for name, prefix in (("relu#1", [model.conv1, nn.ReLU()]), ("relu#2", [model.conv1, nn.ReLU(), model.conv2, nn.ReLU()])):
        runs.clear()
        top = top_activations(model, batches(images, labels, 7), name, k=3)
        assert len(runs) == 0 if name == "relu#1" else len(runs) >= 6  # and the receptive field's probe
        for unit, expected in enumerate(brute_force(nn.Sequential(*prefix), images, len(prefix) - 1, 3)):
            torch.testing.assert_close(top.values[unit], torch.tensor([value for value, _, _ in expected]))
