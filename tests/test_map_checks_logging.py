"""log_saliency / log_occlusion with checks=True through real event files and TensorBoard's real app: the
numbers the tab reads back equal the checks computed independently here; the scalars reach the Scalars tab;
masks without checks are refused; the model is left as found."""

import numpy as np
import pytest
import torch
from torch import nn

from helpers import assert_same_state, get_json, model_state, tensorboard_client

from tb_cnnviz import CNNViz
from tb_cnnviz.methods import (
    deletion_curve,
    grad_cam,
    mass_in_mask,
    occlusion,
    occlusion_importance,
    pointing_game,
    random_maps,
    randomization_check,
)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(self.relu(self.conv2(self.relu(self.bn(self.conv1(x))))).mean(dim=(2, 3)))


def close(logged, expected):
    np.testing.assert_allclose(np.asarray(logged, dtype=float), np.asarray(expected, dtype=float), rtol=1e-3, atol=1e-4)


def test_checks_read_back_as_computed_independently(tmp_path):
    torch.manual_seed(0)
    model = Net().train()
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    labels = [1, 3]
    masks = torch.zeros(2, 12, 12, dtype=torch.bool)
    masks[0, 2:6, 2:6] = True
    masks[1, 6:11, 5:12] = True
    before = model_state(model)
    with CNNViz(model, tmp_path / "run", probe_images=x, probe_labels=labels, raise_errors=True) as viz:
        viz.log_saliency(3, method="grad_cam", checks=True, masks=masks)
        viz.log_occlusion(3, window=4, stride=2, checks=True)
        viz.log_saliency(3, method="saliency")  # no checks: no "checks" in its meta
    assert_same_state(before, model_state(model))

    targets = torch.tensor(labels)
    cam = grad_cam(model, x, targets, layer="conv2").upsampled
    client = tensorboard_client(tmp_path, "false")
    _, sample = get_json(client, "sample", run="run", kind="attribution", layer="grad_cam", step=3)
    checks = sample["meta"]["checks"]
    expected = randomization_check(model, x, targets, "grad_cam", layer="conv2")
    assert checks["layers"] == ["fc", "conv2", "conv1"] == expected.layers
    close(checks["similarity"], expected.similarity.T)
    for key, mode, order in (("deletion", "deletion", cam), ("insertion", "insertion", cam),
                             ("random_deletion", "deletion", random_maps(x)),
                             ("random_insertion", "insertion", -random_maps(x))):  # the random deletion's order reversed
        curve = deletion_curve(model, x, targets, order, steps=32, mode=mode)
        close(checks[key]["probability"], curve.probability.T)
        close(checks[key]["auc"], curve.auc)
    close(checks["fractions"], np.floor(np.arange(33) * 144 / 32 + 0.5) / 144)  # 144 pixels, k * 4.5 rounded half up
    assert checks["pointing"] == pointing_game(cam, masks).tolist()
    close(checks["mass"], mass_in_mask(cam, masks))
    assert checks["sane"] == (expected.similarity.mean(dim=0) < checks["sanity_threshold"]).tolist()
    assert checks["beats_random"] == [
        bool(checks["deletion"]["auc"][n] < checks["random_deletion"]["auc"][n]
             and checks["insertion"]["auc"][n] > checks["random_insertion"]["auc"][n]) for n in range(2)]

    _, occluded = get_json(client, "sample", run="run", kind="attribution", layer="occlusion", step=3)
    heat = occlusion(model, x, targets, window=4, stride=2)
    pixels = occlusion_importance(heat, 12, 12, 4, 2)
    curve = deletion_curve(model, x, targets, pixels, steps=32)
    close(occluded["meta"]["checks"]["deletion"]["auc"], curve.auc)
    assert occluded["meta"]["checks"]["pointing"] is None
    _, plain = get_json(client, "sample", run="run", kind="attribution", layer="saliency", step=3)
    assert "checks" not in plain["meta"]

    scalars = client.get("/data/plugin/scalars/scalars", query_string={"run": "run", "tag": "cnnviz/checks/grad_cam/pointing_game"})
    assert scalars.status_code == 200
    assert scalars.json[0][1:] == [3, pytest.approx(pointing_game(cam, masks).float().mean().item())]


def test_masks_without_checks_or_of_the_wrong_shape_are_named(tmp_path):
    model = Net()
    x = torch.randn(2, 3, 12, 12)
    with CNNViz(model, tmp_path / "run", probe_images=x, raise_errors=True) as viz:
        with pytest.raises(ValueError, match="checks=True"):
            viz.log_saliency(0, method="saliency", masks=torch.ones(2, 12, 12))
        with pytest.raises(ValueError, match=r"masks must be \(N, H, W\)"):
            viz.log_occlusion(0, window=4, checks=True, masks=torch.ones(2, 11, 12))
