"""The Filters view: each conv's weights as a PNG mosaic with a per-filter noise score, and each conv's mean
score as a scalar beside the loss (``cnnviz/filter_noise/<layer>``): noisy, untrained-looking filters stand out.

Kind ``filters``, a blob sequence: [meta JSON (shape, filters and inputs shown, tile layout, scale, noise per
filter and the noisy ones), PNG mosaic].
"""

from __future__ import annotations

from typing import Any

import torch

from .. import render, summary
from ..methods._hooks import conv_layers, split_call
from ..methods.activations.filters import NOISE_THRESHOLD, noise_score
from .declaration import LoggingRun, Scheduled, View

KIND = "filters"


def log_filters(run: LoggingRun, *, step: int) -> list[str]:
    """Write every 2-D conv's weights (of the run's ``layers``, if given) with per-filter noise scores; returns
    the convs."""
    model, layers = run.model, run.layers
    all_convs = conv_layers(model)
    convs = {n: m for n, m in all_convs.items() if m.weight is not None and m.weight.dim() == 4}
    if layers is not None:
        wanted = {split_call(layer)[0] for layer in layers}
        convs = {n: m for n, m in convs.items() if n in wanted}
    if not convs:
        raise ValueError(
            f"{type(model).__name__} has no 2-D convolution (nn.Conv2d) "
            + ("among layers=" + repr(list(layers)) if layers is not None else "")
            + "; log_filters shows conv weights only"
        )
    first_conv = next(iter(all_convs.values()))
    for order, (layer, conv) in enumerate(convs.items()):
        rgb = conv is first_conv and conv.weight.shape[1] == 3  # the input image's colours
        with torch.inference_mode():
            scores = noise_score(conv.weight.detach()).cpu()  # every filter's, once: the picture shows the first
        run.sink.write([filter_record(layer, conv.weight, order, run.max_filters, run.max_inputs, rgb=rgb,
                                      noise=scores[: run.max_filters]),
                        summary.Scalar(f"filter_noise/{layer}", float(scores.mean()))],  # noisy filters over training
                       step)
    return list(convs)


def filter_record(
    layer: str, weight: torch.Tensor, order: int = 0, max_filters: int = 64, max_inputs: int = 16, rgb: bool = False,
    noise: torch.Tensor | None = None,
) -> summary.Pictures:
    """One conv layer's filters: meta JSON (with each filter's noise score: ``noise``, if the caller has it)
    and one PNG mosaic; ``rgb`` draws each filter as a colour tile (for a first layer on RGB images)."""
    if weight.dim() != 4:
        raise ValueError(f"filters of {layer!r}: expected a 2-D conv weight (out, in, kH, kW); got {tuple(weight.shape)}")
    weight = weight.detach()
    shown = weight[:max_filters]
    noise = noise_score(shown).cpu() if noise is None else noise
    picture, layout = render.filter_picture(shown, max_inputs=max_inputs, rgb=rgb)
    meta = {
        "shape": list(weight.shape),
        "mode": layout["mode"],
        "filters": list(range(shown.shape[0])),
        "filters_total": weight.shape[0],
        "inputs": layout["inputs"],
        "inputs_total": weight.shape[1],
        "tile": layout["tile"],
        "scale": layout["scale"],
        "noise": noise.tolist(),
        "noise_threshold": NOISE_THRESHOLD,
        "noisy": torch.nonzero(noise > NOISE_THRESHOLD).flatten().tolist(),
        "omitted": {"filters": weight.shape[0] - shown.shape[0], "inputs": weight.shape[1] - len(layout["inputs"])},
    }
    if "sub" in layout:
        sub = layout["sub"]
        meta["sub"] = {"rows": sub["rows"], "cols": sub["cols"], "kernel_h": sub["height"],
                       "kernel_w": sub["width"], "gap": sub["gap"]}
    return summary.Pictures(KIND, layer, meta, [picture], order)


def _analyze(job: Any) -> None:
    job.viz.log_filters(job.step)


VIEW = View(KIND, calls=(log_filters,), analyze=_analyze,
            autolog=(Scheduled(KIND, lambda run, step, data: log_filters(run, step=step), lambda run, data: 1.0),))
