"""The checks on a CNN trained in the test (the demo's shapes net, 48 px): Adebayo et al.'s finding, deletion in
saliency order against a random order, the pointing game against the shapes' masks. One training per module."""

import pytest
import torch

from tb_cnnviz.datasets import shapes
from tb_cnnviz.demo_shapes import ShapesNet, normalise, train
from tb_cnnviz.methods import (
    deletion_curve,
    grad_cam,
    occlusion,
    pointing_game,
    random_maps,
    randomization_check,
    saliency,
)
from tb_cnnviz.methods.checks.importance import occlusion_importance

pytestmark = pytest.mark.slow

SIZE = 48
#: the pointing game's tolerance: Zhang et al.'s 15 px on 224 px images, scaled to 48 px
TOLERANCE = 3


@pytest.fixture(scope="module")
def trained():
    data = shapes(2500, size=SIZE, seed=0)
    torch.manual_seed(0)
    model = ShapesNet()
    train(model, normalise(data.images), data.labels, steps=800)
    model.eval()
    test = shapes(60, size=SIZE, seed=1)
    x = normalise(test.images)
    with torch.inference_mode():
        accuracy = (model(x).argmax(dim=1) == test.labels).float().mean().item()
    assert accuracy > 0.8, f"the shapes net did not learn ({accuracy:.0%}): the checks below would mean nothing"
    return model, x, test.labels, test.masks


def test_adebayo_guided_backprop_ignores_the_logits_layer_the_gradient_does_not(trained):
    """After the logits layer alone is re-drawn, guided backprop's maps keep their ranks (Adebayo et al. Fig. 2);
    the gradient's move, and after the whole cascade they are close to unrelated. (Not 0: on 48 px images with
    zero padding, trained and random nets share a weaker gradient near the border: about 0.2.)"""
    model, x, labels, _ = trained
    guided = randomization_check(model, x[:12], labels[:12], "guided_backprop").similarity.mean(dim=1)
    gradient = randomization_check(model, x[:12], labels[:12], "saliency").similarity.mean(dim=1)
    print("guided backprop", guided.tolist(), "gradient", gradient.tolist())
    assert guided[0] > 0.75
    assert gradient[0] < guided[0] - 0.1
    assert gradient[-1] < 0.3 and gradient[-1] < gradient[0] - 0.3


def test_deleting_in_saliency_order_lowers_the_probability_faster_than_a_random_order(trained):
    model, x, labels, _ = trained
    maps = saliency(model, x[:20], labels[:20])
    ordered = deletion_curve(model, x[:20], labels[:20], maps).auc
    shuffled = deletion_curve(model, x[:20], labels[:20], random_maps(x[:20], seed=3)).auc
    assert ordered.mean() < shuffled.mean() - 0.1
    assert (ordered < shuffled).float().mean() >= 0.8


def test_pointing_game_on_the_shapes_masks(trained):
    model, x, labels, masks = trained
    cam = grad_cam(model, x, labels).upsampled
    window, stride = SIZE // 4, SIZE // 16
    heat = occlusion(model, x, labels, window=window, stride=stride, progress=False)
    occluded = occlusion_importance(heat, SIZE, SIZE, window, stride)
    cam_hits = pointing_game(cam, masks, tolerance=TOLERANCE).float().mean().item()
    occlusion_hits = pointing_game(occluded, masks, tolerance=TOLERANCE).float().mean().item()
    print("pointing game: grad_cam", cam_hits, "occlusion", occlusion_hits)
    assert cam_hits >= 0.8 and occlusion_hits >= 0.8
