"""Models whose forward returns more than class scores (logits with features, auxiliary heads): every view that
needs class scores finds them in a tuple or a dict, or where ``output=`` says, and gives what the same net
returning its logits alone gives; where they cannot be found, the error names what the model returned."""

import warnings

import pytest
import torch
from torch import nn

from tb_cnnviz import CNNViz, LoggingFailedWarning
from tb_cnnviz.methods import (check_map, class_model, deconvnet, deletion_curve, evaluate, grad_cam, guided_backprop,
                               guided_grad_cam, occlusion, saliency, smoothgrad)
from tests.helpers import get_json, tensorboard_client

CLASSES = 5


class LogitsNet(nn.Module):
    """A small CNN returning its logits (the reference), or its logits with features in the shape ``returns``."""

    def __init__(self, returns: str = "logits"):
        super().__init__()
        torch.manual_seed(0)
        self.returns = returns
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, CLASSES)

    def forward(self, x):
        maps = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        features = self.pool(maps).flatten(1)
        logits = self.fc(features)
        return {
            "logits": logits,
            "tuple": (logits, features),
            "dict": {"features": features, "logits": logits},
            "unnamed_dict": {"features": features[:, :3, None], "out": logits},  # one (N, classes) tensor
            "aux": (maps, logits),  # the scores second, after a feature map: found only with output=1
            "ambiguous": {"main": logits, "aux": logits * 2},
        }[self.returns]


def images(n=3, size=16):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1))


def pair(returns):
    """The reference net and the same weights returning ``returns``."""
    reference, other = LogitsNet(), LogitsNet(returns)
    other.load_state_dict(reference.state_dict())
    return reference, other


@pytest.mark.parametrize("returns, output", [("tuple", None), ("dict", None), ("unnamed_dict", None), ("aux", 1),
                                             ("ambiguous", "main"), ("tuple", lambda out: out[0])],
                         ids=["tuple", "dict_logits", "dict_one_scores", "aux_index", "ambiguous_key", "callable"])
def test_every_method_that_reads_scores_equals_the_logits_only_net(returns, output):
    reference, other = pair(returns)
    x = images()
    target = torch.tensor([0, 3, 4])
    for method in (saliency, deconvnet, guided_backprop):
        torch.testing.assert_close(method(other, x, target, output=output), method(reference, x, target))
    torch.testing.assert_close(grad_cam(other, x, target, output=output).upsampled, grad_cam(reference, x, target).upsampled)
    torch.testing.assert_close(guided_grad_cam(other, x, target, output=output), guided_grad_cam(reference, x, target))
    torch.testing.assert_close(smoothgrad(saliency, other, x, None, n=3, output=output), smoothgrad(saliency, reference, x, None, n=3))
    torch.testing.assert_close(occlusion(other, x, None, window=4, stride=4, output=output),
                               occlusion(reference, x, None, window=4, stride=4))
    maps = saliency(reference, x, target).abs().amax(1)
    torch.testing.assert_close(deletion_curve(other, x, target, maps, steps=4, output=output).probability,
                               deletion_curve(reference, x, target, maps, steps=4).probability)
    checked, expected = (check_map(net, x, target, "saliency", maps, steps=4, **({"output": output} if net is other else {}))
                         for net in (other, reference))
    torch.testing.assert_close(checked.randomization.similarity, expected.randomization.similarity)
    batches = [(x, torch.tensor([0, 1, 2]))]
    assert evaluate(other, batches, topk=(1,), output=output).topk_accuracy(1) == evaluate(reference, batches, topk=(1,)).topk_accuracy(1)
    torch.testing.assert_close(class_model(other, [1], size=(3, 8, 8), steps=3, output=output).images,
                               class_model(reference, [1], size=(3, 8, 8), steps=3).images)


def test_scores_that_cannot_be_found_are_an_error_naming_what_the_model_returned(tmp_path):
    _, ambiguous = pair("ambiguous")
    with pytest.raises(ValueError, match=r"class scores of shape \(N=3, classes\); got a dict: \{'main': tensor \(3, 5\), "
                                         r"'aux': tensor \(3, 5\)\}.*output="):
        saliency(ambiguous, images(), 0)
    _, aux = pair("aux")  # the first element is a feature map, not (N, classes) scores
    with pytest.raises(ValueError, match=r"a tuple of 2: \[0\] tensor \(3, 8, 16, 16\), \[1\] tensor \(3, 5\)"):
        saliency(aux, images(), 0)
    with pytest.raises(ValueError, match=r"output='nope' does not pick anything"):
        saliency(ambiguous, images(), 0, output="nope")
    with pytest.raises(ValueError, match=r"output=0 picked not class scores .*got \(3, 8, 16, 16\)"):
        saliency(aux, images(), 0, output=0)
    with pytest.raises(TypeError, match="output must be an index or key"):
        CNNViz(aux, str(tmp_path), output=1.5)


@pytest.mark.parametrize("returns, output", [("tuple", None), pytest.param("dict", None, marks=pytest.mark.slow),
                                             pytest.param("aux", 1, marks=pytest.mark.slow)])
def test_every_attribution_view_logs_a_tuple_or_dict_model_as_the_logits_only_net(tmp_path, returns, output):
    """Every attribution view, with its map checks, through real event files and TensorBoard's plugin: the
    logged numbers of the net with extra outputs are those of the logits-only net."""
    x, labels = images(2), [1, 3]
    for name, net in zip(("reference", "other"), pair(returns)):
        options = {"output": output} if name == "other" else {}
        with CNNViz(net, str(tmp_path / name), probe_images=x, probe_labels=labels, raise_errors=True, **options) as viz:
            for method in ("saliency", "deconvnet", "guided_backprop", "grad_cam", "guided_grad_cam"):
                viz.log_saliency(0, method=method, checks=method == "saliency")
            viz.log_saliency(0, method="saliency", smooth=True, n=2)
            viz.log_occlusion(0, window=4, stride=4, checks=True)
            viz.log_performance([(x, torch.tensor(labels))], 0, topk=(1,))
            viz.log_class_models(0, classes=[1], steps=2)
    client = tensorboard_client(tmp_path, "false")
    _, runs = get_json(client, "runs")
    listed = {entry["run"]: entry for entry in runs["runs"]}
    assert listed["other"]["attribution"] == listed["reference"]["attribution"]
    assert len(listed["other"]["attribution"]) == 7
    for kind, layer in [*(("attribution", m) for m in listed["reference"]["attribution"]), ("performance", "eval"),
                        ("class_models", "classes")]:
        metas = [get_json(client, "sample", run=run, kind=kind, layer=layer, step=0)[1]["meta"] for run in ("reference", "other")]
        assert metas[0] == metas[1], f"{kind} {layer} differs"


def test_a_failing_method_warns_again_for_another_method_of_the_same_call(tmp_path):
    """The guard tells failures apart by the call's text arguments: Grad-CAM failing like saliency warns too."""
    _, ambiguous = pair("ambiguous")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        viz = CNNViz(ambiguous, str(tmp_path), probe_images=images(2))
        for method in ("saliency", "grad_cam", "grad_cam"):
            assert viz.log_saliency(0, method=method) is None
        viz.close()
    failures = [str(w.message) for w in caught if w.category is LoggingFailedWarning]
    assert len(failures) == 2 and all("output=" in message for message in failures)
