"""Convolution filters and how noisy they look.

Noise score (per output filter): the share of the kernel's spectral energy above half the Nyquist frequency,

    S(w) = integral_{|f| > 1/4} E(f) df  /  integral E(f) df,      E(f) = sum_c |W_c(f)|^2

where ``W_c`` is the discrete-time Fourier transform of input channel ``c``'s kernel, ``f`` ranges over the
square [-1/2, 1/2]^2 (cycles per pixel; Nyquist is 1/2) and ``|f|`` is the radial frequency. ``E`` is the
transform of the kernel's autocorrelation ``R``, so the integral over the disc is exact and cheap:

    integral_{|f| <= r} E(f) df = pi r^2 R(0) + sum_{d != 0} R(d) r J1(2 pi r |d|) / |d|,     r = 1/4

and the denominator is ``R(0) = sum w^2`` (Parseval). Since ``R(d) = sum_p w(p) w(p + d)``, the disc integral is
the quadratic form ``w^T D w`` with ``D[p, q] = disc(q - p)``: for kernel-sized maps one small matrix product
computes it (no FFT); for larger maps the autocorrelation comes from a zero-padded FFT. A constant kernel scores about 0.2 (the disc holds
most, not all, of a box's energy), a smooth (Gaussian) one near 0, white noise ``1 - pi/16 ~= 0.80``.
Trained first-layer filters are smooth; a high score flags a filter that still looks like its random
initialisation (CS231n, "Visualizing what ConvNets learn").
"""

import functools
import math

import torch

#: Above this score a filter is flagged as noisy: halfway between smooth (~0) and white noise (~0.8).
NOISE_THRESHOLD = 0.6
HIGH_FREQUENCY = 0.25  # cycles per pixel: half the Nyquist frequency


def _disc_weights(lag: torch.Tensor) -> torch.Tensor:
    """The integral over the disc |f| <= r of the Fourier kernel at integer lag ``|d|`` (the formula above)."""
    r = HIGH_FREQUENCY
    return torch.where(
        lag > 0,
        r * torch.special.bessel_j1(2 * math.pi * r * lag) / lag.clamp_min(1),
        torch.full_like(lag, math.pi * r * r),
    )


#: Up to this many pixels per map (11 x 11 kernels) the quadratic form beats the FFT.
_QUADRATIC_FORM_MAX_PIXELS = 121


@functools.lru_cache(maxsize=32)
def _disc_matrix(h: int, w: int) -> torch.Tensor:
    """D[p, q] = disc(|q - p|) over the pixels of an h x w map (float64, CPU): the same for every call."""
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    positions = torch.stack([y.flatten(), x.flatten()], dim=1).to(torch.float64)
    return _disc_weights(torch.cdist(positions, positions))


def _energies(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., C, H, W) -> (...) float64 twice: the energy inside the disc |f| <= 1/4 and the whole energy,
    each summed over C.

    Kernel-sized maps: through each map's Gram matrix ``G = sum_c w_c w_c^T`` (P x P for P pixels), as
    ``sum(G * D)`` and ``trace(G)`` -- one batched product, in float32 (3x faster than float64 on a resnet's
    11 M weights; the sums of squares of real weights are far from float32's limits), in float64 for maps so
    small that float32 squares could underflow. Larger maps: the autocorrelation from a zero-padded FFT."""
    h, w = maps.shape[-2:]
    if h * w <= _QUADRATIC_FORM_MAX_PIXELS:
        safe = maps.numel() > 0 and bool(maps.abs().amax() > _FLOAT32_SAFE)
        dtype = torch.float32 if safe else torch.float64
        flat = maps.to(dtype).flatten(-2)  # (..., C, P)
        gram = flat.transpose(-1, -2) @ flat  # (..., P, P)
        disc = _disc_matrix(h, w).to(maps.device, dtype)
        low = (gram * disc).sum(dim=(-2, -1), dtype=torch.float64)
        return low, gram.diagonal(dim1=-2, dim2=-1).sum(dim=-1, dtype=torch.float64)
    maps = maps.double()
    size = (2 * h - 1, 2 * w - 1)  # zero padding makes the circular autocorrelation the linear one
    spectrum = torch.fft.rfft2(maps, s=size)
    autocorrelation = torch.fft.irfft2(spectrum.abs().square(), s=size).sum(dim=-3)
    lag_y = torch.fft.fftfreq(size[0], d=1 / size[0], dtype=torch.float64, device=maps.device)
    lag_x = torch.fft.fftfreq(size[1], d=1 / size[1], dtype=torch.float64, device=maps.device)
    lag = (lag_y[:, None].square() + lag_x[None, :].square()).sqrt()
    return (autocorrelation * _disc_weights(lag)).sum(dim=(-2, -1)), maps.square().sum(dim=(-3, -2, -1))


#: Below this largest |value| the float32 Gram matrix could underflow: such maps are computed in float64.
_FLOAT32_SAFE = 1e-15


def high_frequency_share(maps: torch.Tensor) -> torch.Tensor:
    """Share of spectral energy above half the Nyquist frequency, for (..., C, H, W) -> (...), in [0, 1].

    Energies are summed over the C axis (input channels of a filter, colour channels of an image). An
    all-zero input scores 0. The same formula serves the filter noise score and an image's texture energy.
    """
    if maps.dim() < 3:
        raise ValueError(f"expected (..., C, H, W); got shape {tuple(maps.shape)}")
    low, total = _energies(maps.detach())
    share = (1 - low / total.clamp_min(torch.finfo(torch.float64).tiny)).clamp(0, 1)
    return torch.where(total > 0, share, torch.zeros_like(share)).float()


def noise_score(weight: torch.Tensor) -> torch.Tensor:
    """Noise score of each output filter of a conv weight (O, I, kH, kW) -> (O,), in [0, 1].

    Example::

        scores = noise_score(model.conv1.weight)   # (64,)
        noisy = (scores > NOISE_THRESHOLD).nonzero()
    """
    if weight.dim() != 4:
        raise ValueError(f"noise_score expects a 2-D conv weight (out, in, kH, kW); got shape {tuple(weight.shape)}")
    return high_frequency_share(weight)
