"""Every view on the CNNs people train: torchvision and timm models (random weights) x every view.

Each cell works or is refused with a one-line ValueError / TypeError that names why; anything else fails the
test. The health cell pushes one channel of the first watched activation off on purpose and must find exactly
that channel, read back from the event file. The results go to docs/coverage.md, which the README shows: a
test checks the two agree. Small on purpose (64x64 inputs, one probe image, two optimisation steps, eight
images, each model built once); every model runs in `make test`.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from helpers import health_events

from tb_cnnviz import CNNViz
from tb_cnnviz.analyze import _code_layer, analyze, image_folder
from tb_cnnviz.methods._hooks import conv_layers
from tb_cnnviz.methods.activations.activation_sites import find_activation_sites

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SIZE = 64
TORCHVISION = ["resnet18", "vgg11_bn", "densenet121", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0",
               "regnet_y_400mf", "convnext_tiny", "shufflenet_v2_x0_5", "squeezenet1_1", "googlenet", "mnasnet0_5"]
TIMM = ["resnet18", "efficientnet_b0", "convnext_atto", "regnetx_002", "mobilenetv3_small_050"]
VIEWS = ["activations", "filters", "health", "saliency", "deconvnet", "guided_backprop", "grad_cam",
         "guided_grad_cam", "occlusion", "top patches", "embedding", "inversion", "class models", "channel images",
         "correspondence", "performance", "analyze"]


def build(source: str, name: str) -> nn.Module:
    torch.manual_seed(0)
    if source == "timm":
        import timm

        return timm.create_model(name, pretrained=False, num_classes=10)
    import torchvision

    extra = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
    return getattr(torchvision.models, name)(weights=None, num_classes=10, **extra)


def push_one_channel_off(model: nn.Module) -> tuple[str, int]:
    """The first watched activation's channel 1, made off for every input by a large negative bias where the
    activation's input is made: the layer name and the channel health monitoring must report."""
    site = next(iter(find_activation_sites(model).values()))
    modules = dict(model.named_modules())
    producer = site.module if not (site.before or site.found_as in ("ReLU", "ReLU6")) else _feeding_module(model, site.module)
    while not isinstance(getattr(modules[producer], "bias", None), torch.Tensor):  # timm's BatchNormAct2d.drop
        producer = producer.rpartition(".")[0]  # -> the norm module holding it
    with torch.no_grad():
        modules[producer].bias[1] = -1e4
    return site.module, 1


def _feeding_module(model: nn.Module, name: str) -> str:
    from tb_cnnviz.methods.activations.activation_sites import _ActivationLeafTracer

    for node in _ActivationLeafTracer().trace(model).nodes:
        if node.op == "call_module" and node.target == name:
            return node.args[0].target
    raise AssertionError(f"no module feeds {name}")


def run_view(view: str, viz: CNNViz, model: nn.Module, data: list, folder: Path, logdir: Path, expected) -> None:
    convs = list(conv_layers(model))
    middle = convs[len(convs) // 2]  # as analyze picks it: neither edge of the net
    x = viz.probe_images
    if view == "activations":
        assert viz.log_activations(0)
    elif view == "filters":
        assert viz.log_filters(0)
    elif view == "health":
        layer, channel = expected
        for batch, _, _ in data[:2]:
            with torch.no_grad():
                model(batch)
        viz.flush_dead_filters(0)
        viz.flush()
        dead, _ = health_events(logdir)
        flagged = {name: (series[-1][1] >= 0.99).nonzero()[0].tolist() for name, (_, series) in dead.items()}
        assert flagged[layer] == [channel], (layer, flagged[layer])
    elif view in ("saliency", "deconvnet", "guided_backprop", "grad_cam", "guided_grad_cam"):
        assert viz.log_saliency(0, method=view) == view
    elif view == "occlusion":
        assert viz.log_occlusion(0, window=32, stride=16) == "occlusion"
    elif view == "top patches":
        assert viz.log_top_activations(data, middle, 0, k=2, channels=[0, 1])
    elif view == "embedding":
        assert viz.log_embedding(data, _code_layer(model), 0, n=8, projector=False) == 8
    elif view == "inversion":
        assert viz.log_inversion(0, steps=2)
    elif view == "class models":
        assert viz.log_class_models(0, classes=[0], steps=2)
    elif view == "channel images":
        assert viz.log_channel_visualizations(0, middle, channels=[0], steps=2)
    elif view == "correspondence":
        assert viz.log_correspondence(0, x[0], data[1][0][0], middle) is not None
    elif view == "performance":
        assert viz.log_performance(data, 0, examples=2) is not None
    elif view == "analyze":
        assert analyze(model, image_folder(folder, size=SIZE), logdir / "analyze", views=("activations", "top", "embedding"),
                       probes=1) == ["activations", "top", "embedding"]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> tuple[list, Path]:
    """Eight images in batches of four (with labels and data set indices), and the same as an ImageFolder."""
    from PIL import Image

    generator = torch.Generator().manual_seed(3)
    x = torch.randn(8, 3, SIZE, SIZE, generator=generator)
    labels = torch.arange(8) % 2
    folder = tmp_path_factory.mktemp("folder")
    for i in range(8):
        (folder / str(int(labels[i]))).mkdir(exist_ok=True)
        pixels = (torch.rand(SIZE, SIZE, 3, generator=generator) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / str(int(labels[i])) / f"{i}.png")
    data = [(x[i:i + 4], labels[i:i + 4], torch.arange(i, i + 4)) for i in (0, 4)]
    return data, folder


ALL_MODELS = [("torchvision", name) for name in TORCHVISION] + [("timm", name) for name in TIMM]
#: Every model, every run: about 80 s for the 17 on an idle 2-core machine (5 s a model; a loaded machine is
#: several times slower). ``CNNVIZ_MATRIX_MODELS=resnet18,googlenet`` narrows it while working on one model.
_ONLY = {name for name in os.environ.get("CNNVIZ_MATRIX_MODELS", "").split(",") if name}
MODELS = [(source, name) for source, name in ALL_MODELS if not _ONLY or name in _ONLY]
RESULTS: dict[str, dict[str, str | None]] = {}  #: model -> view -> None (works) or the one-line refusal


def matrix_row(source: str, name: str, data: list, folder: Path, logdir: Path) -> dict[str, str | None]:
    """Every view on one model: None where it works, else the refusal's one line; a crash is CRASH ..."""
    model = build(source, name).eval()
    expected = push_one_channel_off(model)
    row: dict[str, str | None] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        viz = CNNViz(model, logdir, probe_images=data[0][0][:1], probe_labels=[0], raise_errors=True)
        viz.watch_dead_filters(every=1000)
        for view in VIEWS:
            try:
                run_view(view, viz, model, data, folder, logdir, expected)
                row[view] = None
            except (ValueError, TypeError) as exc:
                row[view] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            except Exception as exc:  # noqa: BLE001 -- a crash is a failure, reported with the whole row
                row[view] = f"CRASH {type(exc).__name__}: {exc}"
        viz.close()
    return row


@pytest.mark.parametrize(("source", "name"), MODELS, ids=[f"{s}-{n}" for s, n in MODELS])
def test_every_view_works_or_is_refused_in_one_line_that_names_why(source, name, images, tmp_path):
    data, folder = images
    row = RESULTS[f"{source} {name}"] = matrix_row(source, name, data, folder, tmp_path)
    print(f"\n{source} {name}:", {view: reason for view, reason in row.items() if reason is not None})
    crashes = {view: reason for view, reason in row.items() if reason is not None and reason.startswith("CRASH")}
    assert not crashes, crashes
    for view, reason in row.items():
        assert reason is None or ("\n" not in reason and len(reason) > 10), (view, reason)
    # The views every CNN must have, whatever its style.
    refused = {view: row[view] for view in ("activations", "filters", "health", "saliency", "grad_cam", "occlusion",
                                            "embedding") if row[view] is not None}
    assert not refused, refused


def markdown(results: dict[str, dict[str, str | None]]) -> str:
    """The table the README shows: a tick per working cell, a numbered note per refusal."""
    notes: list[str] = []
    lines = ["| model | " + " | ".join(VIEWS) + " |", "|---|" + "---|" * len(VIEWS)]
    for model, row in results.items():
        cells = []
        for view in VIEWS:
            reason = row[view]
            if reason is None:
                cells.append("✓")
            else:
                reason = re.sub(r"\s+", " ", reason).replace("|", "\\|")
                if reason not in notes:
                    notes.append(reason)
                cells.append(f"– ({notes.index(reason) + 1})")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += [""] + [f"({i}) {reason}  " for i, reason in enumerate(notes, 1)]
    return "\n".join(lines).rstrip() + "\n"


def test_the_readme_shows_this_run_s_matrix():
    if any(f"{source} {name}" not in RESULTS for source, name in ALL_MODELS):
        pytest.skip("the README's table is checked when the whole matrix runs (CNNVIZ_MATRIX_MODELS unset)")
    table = markdown({f"{source} {name}": RESULTS[f"{source} {name}"] for source, name in ALL_MODELS})
    (ROOT / "docs" / "coverage.md").write_text(
        "# Coverage: every view on torchvision and timm models\n\n"
        "Generated by `tests/test_coverage_matrix.py` (random weights, 64x64 inputs): ✓ works, – refused with the "
        "numbered reason.\n\n" + table)
    readme = (ROOT / "README.md").read_text()
    shown = readme.split("<!-- coverage:start -->")[-1].split("<!-- coverage:end -->")[0].strip()
    assert shown == table.strip(), "README's coverage table differs from this run's: copy docs/coverage.md into it"
