"""log_saliency / log_occlusion through real event files and TensorBoard's real app: what the tab reads back
equals the maps computed independently here; NaN is flagged; bad input is named; training is untouched."""

import io
import warnings

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from helpers import assert_same_state, get_json, model_state, naive_occlusion, tensorboard_client

from tb_cnnviz import CNNViz
from tb_cnnviz.logger import LoggingFailedWarning


@pytest.fixture
def small_resnet():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=10)


def probe_images():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))


def blob_picture(client, run, key) -> np.ndarray:
    reply = client.get("/data/plugin/cnnviz/blob", query_string={"run": run, "key": key})
    assert reply.status_code == 200
    return np.asarray(Image.open(io.BytesIO(reply.data)))


def test_logged_saliency_and_occlusion_read_back_as_computed_independently(tmp_path, small_resnet):
    x, labels = probe_images(), [3, 7]
    small_resnet.train()  # logging from a training loop: the model stays in training mode
    before = model_state(small_resnet)
    with CNNViz(small_resnet, tmp_path / "run", probe_images=x, probe_labels=labels, raise_errors=True) as viz:
        assert viz.log_saliency(5, method="saliency") == "saliency"
        assert viz.log_saliency(5, method="guided_backprop", smooth=True, n=4) == "smoothgrad(guided_backprop)"
        assert viz.log_occlusion(5, window=8, stride=8) == "occlusion"
    assert_same_state(before, model_state(small_resnet))

    small_resnet.eval()
    with torch.no_grad():
        probabilities = small_resnet(x).softmax(dim=1)
    client = tensorboard_client(tmp_path, "false")
    _, runs = get_json(client, "runs")
    assert runs["runs"][0]["attribution"] == ["saliency", "smoothgrad(guided_backprop)", "occlusion"]

    code, sample = get_json(client, "sample", run="run", kind="attribution", layer="saliency", step=5)
    assert code == 200
    meta = sample["meta"]
    assert meta["targets"] == labels and meta["labels"] == labels and meta["style"] == "heat"
    assert meta["predicted"] == probabilities.argmax(dim=1).tolist()
    np.testing.assert_allclose(meta["target_probability"], probabilities[[0, 1], labels].numpy(), rtol=1e-3)
    assert sample["images"] == 4  # two inputs, two maps

    # The data gradient by hand: max |d score / d pixel| over colours, scaled to the image's maximum.
    pixels = x.clone().requires_grad_(True)
    small_resnet(pixels)[[0, 1], labels].sum().backward()
    expected = pixels.grad.abs().amax(dim=1)
    expected = expected / expected.flatten(1).amax(dim=1)[:, None, None]
    for n in range(2):
        shown = blob_picture(client, "run", sample["blobs"][2 + n]).astype(float) / 255
        assert shown.shape == (32, 32)
        np.testing.assert_allclose(shown, expected[n].numpy(), atol=1 / 255 + 1e-6)
        assert meta["scale"][n] == pytest.approx(pixels.grad[n].abs().max().item(), rel=1e-3)
    assert blob_picture(client, "run", sample["blobs"][0]).shape == (32, 32, 3)

    _, occluded = get_json(client, "sample", run="run", kind="attribution", layer="occlusion", step=5)
    grid = occluded["meta"]["grid"]
    assert (grid["rows"], grid["cols"], grid["window"], grid["stride"]) == (4, 4, 8, 8)
    reference = naive_occlusion(small_resnet, x, labels, 8, 8, 0.0)
    np.testing.assert_allclose(np.array(grid["values"]), reference.numpy(), rtol=1e-3)
    assert occluded["images"] == 2  # the inputs; the probabilities are numbers in the meta


class PoisonedNet(nn.Module):
    """A conv net whose scores are NaN: the gradients of every method are NaN too."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        features = torch.relu(self.conv(x)).mean(dim=(2, 3))
        return self.fc(features * float("nan"))


def test_a_map_with_one_value_everywhere_is_flagged_constant(tmp_path):
    """A model that only averages its input has, analytically, the same gradient w_c / (H W) at every pixel
    of colour channel c: its saliency is one value everywhere; a conv net's is not."""
    averaging = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
    images = probe_images()
    with CNNViz(averaging, tmp_path / "flat", probe_images=images, raise_errors=True) as viz:
        viz.log_saliency(0, method="saliency")
    with CNNViz(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)),
                tmp_path / "conv", probe_images=images, raise_errors=True) as viz:
        viz.log_saliency(0, method="saliency")
    client = tensorboard_client(tmp_path, "false")
    _, flat = get_json(client, "sample", run="flat", kind="attribution", layer="saliency", step=0)
    _, conv = get_json(client, "sample", run="conv", kind="attribution", layer="saliency", step=0)
    assert flat["meta"]["constant"] == [True, True] and all(scale > 0 for scale in flat["meta"]["scale"])
    assert conv["meta"]["constant"] == [False, False]


def test_nan_gradients_are_flagged_not_fatal(tmp_path):
    torch.manual_seed(0)
    with CNNViz(PoisonedNet(), tmp_path / "run", probe_images=torch.rand(2, 3, 8, 8), probe_labels=[0, 2],
                raise_errors=True) as viz:
        viz.log_saliency(0, method="grad_cam")
        viz.log_occlusion(0, window=4, stride=4)
    client = tensorboard_client(tmp_path, "false")
    for method in ("grad_cam", "occlusion"):
        code, sample = get_json(client, "sample", run="run", kind="attribution", layer=method, step=0)
        assert code == 200 and sample["meta"]["nonfinite"] == [True, True], sample["meta"]
        assert sample["meta"]["target_probability"] == [None, None]  # NaN is written as null (valid JSON)


def test_bad_arguments_say_what_is_right_and_a_failing_call_leaves_training_alone(tmp_path, small_resnet):
    x = probe_images()
    viz = CNNViz(small_resnet, tmp_path / "run", probe_images=x, raise_errors=True)
    with pytest.raises(ValueError, match="method must be one of saliency, deconvnet, guided_backprop, grad_cam, guided_grad_cam; got 'gradcam'"):
        viz.log_saliency(0, method="gradcam")
    with pytest.raises(ValueError, match=r"target 12 is out of range: the model has 10 classes \(0..9\)"):
        viz.log_saliency(0, targets=[1, 12])
    with pytest.raises(ValueError, match="window 40 is larger than the image"):
        viz.log_occlusion(0, window=40)
    with pytest.raises(ValueError, match=r"images have 1 channel\(s\) but the model's first conv takes 3"):
        viz.log_saliency(0, images=x[:, :1])
    viz.close()

    quiet = CNNViz(small_resnet, tmp_path / "quiet", probe_images=x, probe_labels=[1, 99])
    before = model_state(small_resnet)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert quiet.log_saliency(0) is None  # label 99 is not a class of this model
    assert_same_state(before, model_state(small_resnet))
    messages = [str(w.message) for w in caught if issubclass(w.category, LoggingFailedWarning)]
    assert len(messages) == 1 and "log_saliency failed" in messages[0] and "target 99 is out of range" in messages[0]
    quiet.close()


def test_both_loaders_list_the_demo_attribution_methods(demo_client):
    _, runs = get_json(demo_client, "runs")
    for entry in runs["runs"]:
        assert entry["attribution"] == ["saliency", "guided_backprop", "grad_cam", "occlusion"]
    code, body = get_json(demo_client, "sample", run="healthy_lr0.05", kind="attribution", layer="grad_cam", step=9999)
    assert code == 404 and "no attribution at step 9999" in body["error"]
