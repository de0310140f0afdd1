"""Attribution methods against independent references: Captum (test-only), a naive occlusion loop, and
analytic cases; the model left as found; bad input named."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
import torchvision
from captum.attr import Deconvolution, GuidedBackprop, GuidedGradCam, LayerGradCam, Saliency
from torch import nn

from helpers import assert_same_state, model_state, naive_occlusion

from tb_cnnviz.methods import (
    deconvnet,
    grad_cam,
    guided_backprop,
    guided_grad_cam,
    last_conv_name,
    occlusion,
    saliency,
    smoothgrad,
)

ARCHITECTURES = ["resnet18", "vgg11_bn", "mobilenet_v3_small", "squeezenet1_1"]
PAIRS = [(saliency, Saliency), (deconvnet, Deconvolution), (guided_backprop, GuidedBackprop)]


def random_model(name: str) -> nn.Module:
    torch.manual_seed(0)
    return getattr(torchvision.models, name)(weights=None, num_classes=10).eval()


def images(count: int = 2, size: int = 64, seed: int = 1) -> torch.Tensor:
    return torch.randn(count, 3, size, size, generator=torch.Generator().manual_seed(seed))


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return ((ours - reference).abs().max() / reference.abs().max()).item()


def captum(method_class, model, x, target, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Captum warns that it sets requires_grad and hooks ReLUs
        return method_class(model).attribute(x.clone(), target=target, **kwargs).detach()


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_gradient_maps_equal_captum(architecture):
    """In-place ReLUs (all four), resnet's reused ReLU module, mobilenet's hardswish/ReLU mix."""
    model = random_model(architecture)
    x = images()
    target = torch.tensor([3, 7])
    for ours, theirs in PAIRS:
        before = model_state(model)
        mine = ours(model, x, target)
        assert_same_state(before, model_state(model))
        reference = captum(theirs, model, x, target, **({"abs": False} if theirs is Saliency else {}))
        assert mine.shape == x.shape
        assert reference.abs().max() > 0
        assert relative_error(mine, reference) < 1e-5, (architecture, ours.__name__)


def test_deconvnet_and_guided_backprop_differ_from_the_gradient():
    """The ReLU rules are active: on a random resnet the three maps are not the same map."""
    model = random_model("resnet18")
    x = images(1)
    plain, deconv, guided = (method(model, x, 0) for method in (saliency, deconvnet, guided_backprop))
    assert relative_error(deconv, plain) > 0.1 and relative_error(guided, plain) > 0.1 and relative_error(guided, deconv) > 0.1


class DensenetWithReluModule(torchvision.models.DenseNet):
    """torchvision's densenet with its ``F.relu`` in ``forward`` as an ``nn.ReLU`` module, the only form
    Captum can hook: the reference for how we treat a bare ``F.relu``."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.final_relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.final_relu(self.features(x))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(out, (1, 1)), 1))


@pytest.mark.slow
def test_a_bare_functional_relu_gets_the_rule_too():
    config = dict(growth_rate=8, block_config=(2, 2), num_init_features=16, num_classes=10)
    torch.manual_seed(0)
    plain = torchvision.models.DenseNet(**config).eval()
    reference_model = DensenetWithReluModule(**config).eval()
    reference_model.load_state_dict(plain.state_dict())
    x = images(2, 32)
    for ours, theirs in PAIRS[1:]:
        assert relative_error(ours(plain, x, 1), captum(theirs, reference_model, x, 1)) < 1e-5


@pytest.mark.parametrize("architecture", ["resnet18", "vgg11_bn"])
def test_grad_cam_and_guided_grad_cam_equal_captum(architecture):
    model = random_model(architecture)
    x = images()
    layer = last_conv_name(model, x)
    module = model.get_submodule(layer)
    assert layer == {"resnet18": "layer4.1.conv2", "vgg11_bn": "features.25"}[architecture]

    before = model_state(model)
    cam = grad_cam(model, x, target=torch.tensor([2, 5]))
    assert_same_state(before, model_state(model))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = LayerGradCam(model, module).attribute(x, target=torch.tensor([2, 5]), relu_attributions=True).detach()
        guided_reference = GuidedGradCam(model, module).attribute(
            x.clone(), target=torch.tensor([2, 5]), interpolate_mode="bilinear"
        ).detach()
    assert cam.cam.shape == reference[:, 0].shape and cam.upsampled.shape == (2, 64, 64)
    assert cam.layer == layer and cam.targets.tolist() == [2, 5]
    small, upsampled = cam  # unpacks as the pair the signature promises
    assert small is cam.cam and upsampled is cam.upsampled
    torch.testing.assert_close(cam.cam, reference[:, 0], rtol=1e-5, atol=1e-7)
    assert relative_error(guided_grad_cam(model, x, torch.tensor([2, 5])), guided_reference) < 1e-5


def test_grad_cam_on_a_reused_module_names_the_call_it_used():
    model = random_model("resnet18")
    cam = grad_cam(model, images(1), 0, layer="layer4.1.relu")
    assert cam.layer == "layer4.1.relu#2" and cam.cam.shape == (1, 2, 2)
    first = grad_cam(model, images(1), 0, layer="layer4.1.relu#1")
    assert first.layer == "layer4.1.relu#1" and first.cam.shape == (1, 2, 2)


@pytest.mark.parametrize("window,stride,fill,batch_size", [(16, 8, 0.0, 64), (12, 10, 0.5, 5), (64, 1, -1.0, 7)])
def test_occlusion_equals_a_naive_loop(window, stride, fill, batch_size):
    """Batches that span images (batch_size 5 and 7 do not divide the positions), a stride that leaves a margin,
    a window as big as the image."""
    model = random_model("resnet18")
    x = images(2)
    before = model_state(model)
    ours = occlusion(model, x, window=window, stride=stride, fill=fill, batch_size=batch_size, progress=False)
    assert_same_state(before, model_state(model))
    with torch.no_grad():
        predicted = model(x).argmax(dim=1)
    reference = naive_occlusion(model, x, predicted, window, stride, fill)
    assert ours.shape == reference.shape == (2, (64 - window) // stride + 1, (64 - window) // stride + 1)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-5)


def test_smoothgrad_of_a_relu_pixel_is_the_normal_cdf():
    """score = sum of relu(pixels): d score / d pixel = [pixel + noise > 0], whose mean is Phi(pixel / spread)."""
    model = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(64, 2, bias=False))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[3].weight.fill_(1.0)
    x = torch.linspace(-1, 1, 64).view(1, 1, 8, 8)
    rng = torch.get_rng_state()
    maps = smoothgrad(saliency, model, x, 0, n=2000, sigma=0.25)
    assert torch.equal(torch.get_rng_state(), rng)
    spread = 0.25 * 2.0
    expected = torch.tensor([0.5 * (1 + math.erf(v / (spread * math.sqrt(2)))) for v in x.flatten().tolist()])
    assert (maps.flatten() - expected).abs().max() < 0.05
    assert torch.equal(maps, smoothgrad(saliency, model, x, 0, n=2000, sigma=0.25))  # same seed, same map
    torch.testing.assert_close(smoothgrad(guided_backprop, model, x, 0, n=3, sigma=0.0), guided_backprop(model, x, 0))


def test_methods_leave_a_training_model_as_found_also_when_they_raise():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(inplace=True), nn.Dropout(0.5),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).train()
    model[3].eval()
    model[0].weight.requires_grad_(False)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    x = torch.randn(2, 3, 8, 8)
    x_before = x.clone()
    before = model_state(model)
    for method in (saliency, deconvnet, guided_backprop, guided_grad_cam, lambda m, i, t: grad_cam(m, i, t).cam,
                   lambda m, i, t: occlusion(m, i, t, window=4, stride=2)):
        method(model, x, 1)
        assert_same_state(before, model_state(model))
        with pytest.raises(ValueError, match="target 9 is out of range: the model has 3 classes"):
            method(model, x, 9)
        assert_same_state(before, model_state(model))
        assert torch.equal(x, x_before) and not x.requires_grad and x.grad is None


def test_bad_input_names_the_argument():
    model = random_model("squeezenet1_1")
    x = images(1, 32)
    with pytest.raises(ValueError, match=r"target 10 is out of range: the model has 10 classes \(0..9\)"):
        saliency(model, x, 10)
    with pytest.raises(ValueError, match="target has 2 entries for 1 images"):
        guided_backprop(model, x, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="window 40 is larger than the image"):
        occlusion(model, x, 0, window=40)
    with pytest.raises(ValueError, match="stride must be a positive int"):
        occlusion(model, x, 0, window=8, stride=0)
    with pytest.raises(ValueError, match=r"images have 1 channel\(s\) but the model's first conv takes 3.*expand"):
        deconvnet(model, x[:, :1], 0)
    with pytest.raises(ValueError, match="images are on meta but the model is on cpu"):
        saliency(model, x.to("meta"), 0)
    features_only = model.features
    with pytest.raises(ValueError, match=r"output must be class scores of shape \(N=1, classes\); got \(1, 512, 1, 1\)"):
        grad_cam(features_only, x, 0)
    with pytest.raises(ValueError, match="layer: SqueezeNet has no layer 'features.99'"):
        grad_cam(model, x, 0, layer="features.99")
