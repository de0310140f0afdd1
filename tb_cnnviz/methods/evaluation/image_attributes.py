"""Attributes of an image computed from its pixels, to ask *which kinds of images* a network gets wrong
(after the ILSVRC analysis of Russakovsky et al., which bins accuracy by image and object attributes).

Pixels are expected in [0, 1] (``CNNViz.log_performance`` takes a ``to_pixels`` to undo normalisation).
Luma is ``Y = 0.299 R + 0.587 G + 0.114 B`` (Rec. 601); a one-channel image is its own luma.

- ``brightness``: mean of Y.
- ``contrast``: RMS contrast, the standard deviation of Y.
- ``colourfulness`` (Hasler & Suesstrunk 2003), on the 0..255 scale of the paper:
  ``sqrt(std(rg)^2 + std(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2)``, ``rg = R - G``, ``yb = (R + G)/2 - B``;
  0 for grey images, about 15 "slightly", 33 "moderately", 59 "quite" and 82+ "highly" colourful.
- ``texture_energy``: the share of Y's spectral energy above half the Nyquist frequency, Y's mean removed
  first (the DC term says nothing about texture): the filter noise score's quantity (``filters.py``),
  estimated on the image's own FFT grid with a Hann window.
- ``saliency_concentration`` (optional, from saliency maps): the share of the saliency mass in the top 10% of
  pixels, a proxy for how small the evidence (often, the object) is.
"""

from __future__ import annotations

import torch

from ..activations.filters import HIGH_FREQUENCY

LUMA = (0.299, 0.587, 0.114)
COMPUTED = ("brightness", "contrast", "colourfulness", "texture_energy")


def luma(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, H, W): Rec. 601 luma of RGB, the channel itself of grey, the channel mean otherwise."""
    if images.shape[1] == 3:
        weights = torch.tensor(LUMA, dtype=images.dtype, device=images.device)
        return torch.einsum("nchw,c->nhw", images, weights)
    return images.mean(dim=1)


def colourfulness(images: torch.Tensor) -> torch.Tensor:
    """Hasler & Suesstrunk's colourfulness of RGB images in [0, 1], on the paper's 0..255 scale; 0 if not RGB."""
    if images.shape[1] != 3:
        return torch.zeros(len(images), dtype=images.dtype, device=images.device)
    red, green, blue = images.flatten(2).unbind(dim=1)
    opponent = torch.stack([red - green, 0.5 * (red + green) - blue], dim=1)  # rg, yb
    variance, mean = torch.var_mean(opponent, dim=2, unbiased=False)
    return 255 * (variance.sum(dim=1).sqrt() + 0.3 * mean.square().sum(dim=1).sqrt())  # the statistics scale with 255


def texture_energy(images: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Share of the luma's spectral energy above half the Nyquist frequency, in [0, 1].

    The filter noise score's quantity, estimated on the image's own frequency grid: the luma, its mean
    removed, times a Hann window (so that the image border does not read as texture), through one FFT in
    float32. (The noise score's exact disc integral costs an FFT of twice the size in float64 per image.)
    ``y``: the luma, when the caller has it already.
    """
    y = (luma(images) if y is None else y).float()
    height, width = y.shape[-2:]
    window = torch.outer(torch.hann_window(height, periodic=False, device=y.device),
                         torch.hann_window(width, periodic=False, device=y.device))
    y = (y - y.mean(dim=(1, 2), keepdim=True)) * window
    power = torch.fft.rfft2(y).abs().square()
    power[..., 1 : (width + 1) // 2] *= 2  # rfft2 keeps one of each conjugate pair of columns: count both
    fy = torch.fft.fftfreq(height, device=y.device)
    fx = torch.fft.rfftfreq(width, device=y.device)
    high = (fy[:, None].square() + fx[None, :].square()).sqrt() > HIGH_FREQUENCY
    total = power.sum(dim=(1, 2))
    share = (power * high).sum(dim=(1, 2)) / total.clamp_min(torch.finfo(torch.float32).tiny)
    return torch.where(total > 0, share, torch.zeros_like(share)).to(images.dtype)


def image_attributes(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every computed attribute of (N, C, H, W) images in [0, 1], each (N,), on the images' device."""
    y = luma(images)
    contrast, brightness = torch.std_mean(y.flatten(1), dim=1, unbiased=False)
    return {
        "brightness": brightness,
        "contrast": contrast,
        "colourfulness": colourfulness(images),
        "texture_energy": texture_energy(images, y),
    }


def saliency_concentration(maps: torch.Tensor, top: float = 0.1) -> torch.Tensor:
    """Share of the saliency mass (N, H, W) or (N, C, H, W) -> max |.| over C, in the ``top`` share of pixels."""
    if maps.dim() == 4:
        maps = maps.abs().amax(dim=1)
    mass = maps.abs().flatten(1)
    count = max(1, round(top * mass.shape[1]))
    total = mass.sum(dim=1)
    share = mass.topk(count, dim=1).values.sum(dim=1) / total.clamp_min(torch.finfo(mass.dtype).tiny)
    return torch.where(total > 0, share, torch.full_like(share, float("nan")))
