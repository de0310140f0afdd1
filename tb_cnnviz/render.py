"""Tensors to pictures: tiles laid out in mosaics, encoded as PNG.

Pictures are made on the logging side so that the TensorBoard plugin only serves bytes. Each function returns
the layout beside the picture, so the tab can tell which tile is which channel without decoding anything.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
from PIL import Image

GAP = 1  # pixels between tiles
Z_RLE = 3  # zlib's run-length strategy
BACKGROUND = 255  # white gaps: they separate dark (zero) tiles visibly


def grid_shape(count: int) -> tuple[int, int]:
    """(rows, cols) of the squarest grid holding ``count`` tiles."""
    cols = max(1, math.ceil(math.sqrt(count)))
    return max(1, math.ceil(count / cols)), cols


def mosaic(tiles: np.ndarray, gap: int = GAP, background: int = BACKGROUND, columns: int | None = None) -> tuple[np.ndarray, dict]:
    """Lay out uint8 tiles (K, h, w) or (K, h, w, 3) row-major in a grid (the squarest, or ``columns``
    wide); return the picture and its layout."""
    if tiles.dtype != np.uint8 or tiles.ndim not in (3, 4):
        raise ValueError(f"tiles must be uint8 (K, h, w[, 3]); got {tiles.dtype} {tiles.shape}")
    count, h, w = tiles.shape[:3]
    rows, cols = grid_shape(count) if columns is None else (max(1, -(-count // columns)), columns)
    colour = tiles.shape[3:]
    cells = np.full((rows * cols, h + gap, w + gap) + colour, background, dtype=np.uint8)
    cells[:count, :h, :w] = tiles
    grid = cells.reshape((rows, cols, h + gap, w + gap) + colour).swapaxes(1, 2)
    picture = grid.reshape((rows * (h + gap), cols * (w + gap)) + colour)[: rows * (h + gap) - gap, : cols * (w + gap) - gap]
    return np.ascontiguousarray(picture), {"rows": rows, "cols": cols, "height": h, "width": w, "gap": gap}


def to_uint8(values: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> np.ndarray:
    """Map ``values`` linearly from [lo, hi] (broadcast) to 0..255; a constant range maps to 0."""
    span = (hi - lo).clamp_min(torch.finfo(torch.float32).tiny)
    scaled = ((values - lo) / span).nan_to_num(0.0).clamp(0, 1)
    return (scaled * 255).round().to(torch.uint8).numpy()


def png_bytes(picture: np.ndarray) -> bytes:
    """Encode a uint8 (H, W) grey or (H, W, 3) RGB picture as PNG.

    zlib's run-length strategy after PNG's row filters: on activation mosaics it is about twice as fast as
    the default strategy and no larger (benchmarks/storage.py compares with TensorBoard's image summary)."""
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG", compress_type=Z_RLE)
    return buffer.getvalue()


def channel_ranges(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel [lo, hi] over all images and pixels of (N, C, h, w): one scale for every probe image,
    so the same grey means the same value across images."""
    per_image_lo, per_image_hi = maps.flatten(2).aminmax(dim=2)  # reducing the contiguous axis first is fast
    return per_image_lo.amin(dim=0), per_image_hi.amax(dim=0)


def activation_pictures(maps: torch.Tensor) -> tuple[list[bytes], dict, list[list[float]]]:
    """(N, C, h, w) finite maps -> one PNG mosaic per image, the layout, and each channel's [lo, hi]."""
    lo, hi = channel_ranges(maps)
    grey = to_uint8(maps, lo[None, :, None, None], hi[None, :, None, None])
    pictures, layout = [], {}
    for image_tiles in grey:
        picture, layout = mosaic(image_tiles)
        pictures.append(png_bytes(picture))
    return pictures, layout, torch.stack([lo, hi], dim=1).tolist()


def filter_picture(weight: torch.Tensor, max_inputs: int = 16, rgb: bool = False) -> tuple[bytes, dict]:
    """A conv weight (O, I, kh, kw) -> one PNG and its layout. Each filter is scaled by its own max |w|,
    with grey 128 at zero so the sign shows.

    * ``rgb`` (the first layer, on 3-channel images): each filter is one colour tile (``mode: "rgb"``).
    * otherwise each filter is a tile that is itself a grid of its first ``max_inputs`` input channels'
      kernels in grey (``mode: "per_input"``): the input axis is kept, not averaged away, because
      averaging cancels opposite-signed kernels and hides exactly the structure worth seeing.
    """
    weight = weight.detach().float().cpu()
    out_channels, in_channels, kh, kw = weight.shape
    scale = weight.abs().flatten(1).amax(dim=1)
    centred = to_uint8(weight, -scale[:, None, None, None], scale[:, None, None, None])
    layout: dict = {}
    if rgb:
        if in_channels != 3:
            raise ValueError(f"rgb filter tiles need 3 input channels; got {in_channels}")
        picture, tile = mosaic(np.ascontiguousarray(centred.transpose(0, 2, 3, 1)))
        layout.update(mode="rgb", tile=tile, inputs=[0, 1, 2])
    else:
        shown = min(in_channels, max_inputs)
        filters = []
        for kernels in centred[:, :shown]:
            tile_picture, sub = mosaic(kernels, background=BACKGROUND)
            filters.append(tile_picture)
        picture, tile = mosaic(np.stack(filters))
        layout.update(mode="per_input", tile=tile, sub=sub, inputs=list(range(shown)))
    layout["scale"] = scale.tolist()
    return png_bytes(picture), layout


# -- attribution maps -------------------------------------------------------------------------------------

HEAT = "heat"  #: non-negative map in [0, 1], drawn through a colour map over the image
SIGNED = "signed"  #: signed map, 0.5 + 0.5 * x / max|x| per image: grey is zero, as in the papers
HEAT_METHODS = ("saliency", "grad_cam")


def finite(values: torch.Tensor) -> tuple[torch.Tensor, list[bool]]:
    """NaN/Inf set to 0, and per image whether any was there (flagged in the tab, never a crash)."""
    bad = ~torch.isfinite(values.flatten(1))
    return values.nan_to_num(0.0, 0.0, 0.0), bad.any(dim=1).tolist()


def display_map(method: str, raw: torch.Tensor) -> tuple[str, torch.Tensor, list[float], list[bool]]:
    """Reduce a raw map (N, C, H, W) for display: saliency and Grad-CAM as a heat map in [0, 1] (saliency:
    max of |.| over colour channels, Simonyan et al.), the others as a signed map in [0, 1] with 0.5 at zero.
    Returns (style, values, each image's scale = the raw value drawn at full intensity, non-finite flags)."""
    values, nonfinite = finite(raw.detach().float().cpu())
    if method in HEAT_METHODS:
        heat = values.abs().amax(dim=1)
        scale = heat.flatten(1).amax(dim=1)
        return HEAT, heat / scale.clamp_min(1e-30)[:, None, None], scale.tolist(), nonfinite
    scale = values.abs().flatten(1).amax(dim=1)
    signed = 0.5 + 0.5 * values / scale.clamp_min(1e-30)[:, None, None, None]
    return SIGNED, signed, scale.tolist(), nonfinite


def unit_pictures(values: torch.Tensor) -> list[bytes]:
    """Values in [0, 1], (N, H, W) grey or (N, C, H, W) with C in (1, 3), to one PNG per image."""
    if values.dim() == 4:
        values = values[:, 0] if values.shape[1] == 1 else values.permute(0, 2, 3, 1)
    pixels = (values.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return [png_bytes(np.ascontiguousarray(picture)) for picture in pixels]


def pictures_in_range(images: torch.Tensor, lo: float, hi: float) -> list[bytes]:
    """Images drawn on one fixed scale, [lo, hi] -> black..white, so that pictures side by side compare
    (a reconstruction beside its original); channels other than 1 or 3 shown as their mean."""
    images, _ = finite(images.detach().float().cpu())
    if images.shape[1] not in (1, 3):
        images = images.mean(dim=1, keepdim=True)
    return unit_pictures((images - lo) / max(hi - lo, 1e-30))


def input_pictures(images: torch.Tensor) -> list[bytes]:
    """The images as the model saw them, each stretched to its own [min, max] (inputs are usually
    normalised, so their raw range means nothing on screen); channels other than 1 or 3 shown as their mean."""
    images, _ = finite(images.detach().float().cpu())
    if images.shape[1] not in (1, 3):
        images = images.mean(dim=1, keepdim=True)
    flat = images.flatten(1)
    lo, hi = flat.amin(dim=1)[:, None, None, None], flat.amax(dim=1)[:, None, None, None]
    return unit_pictures((images - lo) / (hi - lo).clamp_min(1e-30))
