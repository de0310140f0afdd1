"""An image parameterisation and transform robustness for images made by the network, after Olah, Mordvintsev
& Schubert, "Feature Visualization", Distill 2017 (https://distill.pub/2017/feature-visualization/) and
Mordvintsev et al., "Differentiable Image Parameterizations", Distill 2018
(https://distill.pub/2018/differentiable-parameterizations/), as Lucid implements them.

Why: a gradient step on raw pixels changes every frequency equally, and a CNN's gradient is mostly high
frequency, so plain pixel ascent finds adversarial texture. Three changes make the steps favour images:

- **Fourier space with 1/f scaling**: the variables are the image's spectrum, each frequency scaled by
  ``1 / max(f, 1 / max(H, W)) ** decay``, so a step moves low frequencies as much as natural images vary
  there.
- **Decorrelated colour**: the variables are in a colour basis whose axes are uncorrelated, mapped back with
  the square root of the colour correlation matrix (Lucid's, measured on ImageNet, or one measured on your
  data with :func:`colour_correlation_sqrt`), so a step changes brightness and hue as natural images do.
- **Transform robustness**: each step the model sees the image randomly shifted, scaled and rotated (one
  draw per image), so only features that survive small transforms grow.
- **Transparency** (Mordvintsev et al. 2018, "Generation of semi-transparent patterns"): an opacity channel
  of its own, the image laid over a fresh random background each step (:func:`random_background`) and mean
  opacity penalised, so only what the objective needs is drawn; the rest stays background. Used by class
  models: it leaves one object on a plain ground, as the data shows them, instead of a frame of texture.

The image is then squashed by a sigmoid into ``input_range``: it stays in the model's input space.

Example::

    param = ImageParameterization((5, 3, 48, 48), torch.Generator().manual_seed(0), input_range=(-2.0, 2.0))
    images = param()                                    # (5, 3, 48, 48), inside (-2, 2), differentiable
    seen = random_transform(images, torch.Generator().manual_seed(1))
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: Lucid's square root of ImageNet's RGB colour correlation (``lucid/optvis/param/color.py``), columns the
#: decorrelated axes; divided by its largest column norm before use, as Lucid does.
IMAGENET_COLOUR_SQRT = ((0.26, 0.09, 0.02), (0.27, 0.00, -0.05), (0.27, -0.09, 0.03))

#: Transform robustness: the largest shift as a share of the image's side, the scale range, the largest angle.
#: Lucid's ``standard_transforms`` at 224 px are about (1/16, 0.1, 10); these, stronger, were recognised more
#: often on the shapes, whose objects turn by up to 30 degrees (a second net's verdict on the class models of the
#: first: 1-4 of 5 in 6 runs, median 2.5, against 1-2 of 5 with Lucid's; see benchmarks/recognisability.py).
JITTER = 0.1
SCALE = 0.2
DEGREES = 30.0
FLIP = False  #: mirror half the draws: for nets trained with flips (off by default: a digit has a handedness)
#: The spectrum's 1/f exponent: Lucid's 1.0 left the shapes' class models as fine texture (2 of 5 recognised);
#: 1.5 gives shapes nearer the data's size (2-4 of 5); 2.0 blobs too coarse (1-2 of 5).
DECAY = 1.5
#: The starting spectrum's standard deviation. Lucid's 0.01 gives a flat grey image, on which every unit of a
#: small BatchNorm net can be off (no gradient at all); 0.1 starts from visible low-frequency noise.
INIT_SCALE = 0.1
#: Random backgrounds behind a transparent image, as shares of the input range: a grey level drawn around
#: a given grey (the middle by default; this standard deviation) plus this much pixel noise, fresh each step
#: and image. The finished image is laid over that grey.
BACKGROUND_LEVEL_STD = 0.1
BACKGROUND_NOISE_STD = 0.1


def colour_correlation_sqrt(images: torch.Tensor) -> torch.Tensor:
    """(3, 3) square root of the colour covariance of ``images`` (N, 3, H, W), ``U sqrt(S)`` of its
    eigendecomposition as Lucid's ImageNet matrix was made, divided by its largest column norm; for
    data unlike ImageNet (the shapes' saturated colours on muted backgrounds)."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        got = getattr(images, "shape", type(images))
        raise ValueError(f"images must be a (N, 3, H, W) tensor; got {got}")
    pixels = images.detach().double().transpose(0, 1).flatten(1)
    covariance = torch.cov(pixels)
    values, vectors = torch.linalg.eigh(covariance)
    root = vectors * values.clamp_min(0).sqrt()
    return _normalised(root.float())


def _normalised(root: torch.Tensor) -> torch.Tensor:
    return root / root.norm(dim=0).max().clamp_min(1e-12)


def _colour_matrix(colour: object, channels: int) -> torch.Tensor | None:
    """The (3, 3) matrix to map decorrelated colour to RGB, or None (no decorrelation)."""
    if colour is None:
        return None
    if isinstance(colour, str):
        if colour != "imagenet":
            raise ValueError(f"colour must be 'imagenet', a (3, 3) tensor or None; got {colour!r}")
        return _normalised(torch.tensor(IMAGENET_COLOUR_SQRT)) if channels == 3 else None
    if not isinstance(colour, torch.Tensor) or colour.shape != (3, 3) or channels != 3:
        raise ValueError(f"colour must be a (3, 3) tensor for 3-channel images, 'imagenet' or None; "
                         f"got {colour!r}")
    return colour.detach().float()


class ImageParameterization(nn.Module):
    """A batch of images of ``shape`` (N, C, H, W) as trainable variables: a spectrum with 1/f scaling
    (``fourier=True``) or pixels, in decorrelated colour (``colour``: 'imagenet', a (3, 3) matrix from
    :func:`colour_correlation_sqrt`, or None; ignored unless C == 3), squashed into ``input_range``.
    Starts from small seeded noise (Lucid's standard deviation 0.01), so the first image is mid-range grey."""

    def __init__(self, shape: tuple[int, int, int, int], generator: torch.Generator, *, fourier: bool = True,
                 decay: float = DECAY, colour: object = "imagenet",
                 input_range: tuple[float, float] = (0.0, 1.0), scale: float = INIT_SCALE):
        super().__init__()
        count, channels, height, width = shape
        self.size = (height, width)
        self.fourier = fourier
        self.low, self.high = float(input_range[0]), float(input_range[1])
        device = generator.device
        matrix = _colour_matrix(colour, channels)
        self.register_buffer("colour", None if matrix is None else matrix.to(device))
        if fourier:
            fy = torch.fft.fftfreq(height, device=device)[:, None]
            fx = torch.fft.rfftfreq(width, device=device)[None, :]
            frequency = torch.sqrt(fx * fx + fy * fy)
            # Lucid's fft_image: irfft2 without normalisation, times sqrt(H W), is the orthonormal inverse
            self.register_buffer("weight", frequency.clamp_min(1.0 / max(height, width)).pow(-decay))
            shape_of = (count, channels, height, width // 2 + 1, 2)
        else:
            shape_of = (count, channels, height, width)
        noise = torch.randn(shape_of, generator=generator, device=device)
        self.variables = nn.Parameter(noise * scale)

    def unbounded(self) -> torch.Tensor:
        """(N, C, H, W) before the sigmoid: the spectrum's image (over 4, as Lucid does), colour mixed."""
        if self.fourier:
            spectrum = torch.view_as_complex(self.variables) * self.weight
            image = torch.fft.irfft2(spectrum, s=self.size, norm="ortho") / 4.0
        else:
            image = self.variables
        if self.colour is not None:
            image = torch.einsum("ij,njhw->nihw", self.colour, image)
        return image

    def forward(self) -> torch.Tensor:
        return self.low + (self.high - self.low) * torch.sigmoid(self.unbounded())


def random_background(shape: tuple[int, ...], generator: torch.Generator, input_range: tuple[float, float],
                      grey: float = 0.5) -> torch.Tensor:
    """(N, C, H, W) noisy grey backgrounds inside about ``input_range``, one grey level per image (around
    ``grey``, a share of the range, with ``BACKGROUND_LEVEL_STD`` of it) plus ``BACKGROUND_NOISE_STD`` of
    pixel noise: what a transparent image is seen over while it is optimised (nothing it draws can rely on
    one background)."""
    low, high = float(input_range[0]), float(input_range[1])
    device = generator.device
    level = grey + BACKGROUND_LEVEL_STD * torch.randn((shape[0], 1, 1, 1), generator=generator, device=device)
    share = level + BACKGROUND_NOISE_STD * torch.randn(tuple(shape), generator=generator, device=device)
    return low + (high - low) * share


def composite(images: torch.Tensor, opacity: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """``images`` laid over ``background`` with ``opacity`` (N, 1, H, W) in [0, 1]: alpha compositing."""
    return opacity * images + (1 - opacity) * background


def random_transform(images: torch.Tensor, generator: torch.Generator, jitter: float = JITTER,
                     scale: float = SCALE, degrees: float = DEGREES, flip: bool = FLIP) -> torch.Tensor:
    """Each image shifted by up to ``jitter`` of its side, scaled by a factor in [1 - scale, 1 + scale],
    rotated by up to ``degrees`` and, with ``flip``, mirrored left-right half the time, one draw per image,
    in one bilinear resampling with reflected borders (Olah et al.'s transformation robustness).
    Differentiable; the identity when all are off."""
    if jitter <= 0 and scale <= 0 and degrees <= 0 and not flip:
        return images
    count = images.shape[0]
    draws = torch.rand((count, 5), generator=generator, device=generator.device)
    draws = draws.to(images.device, images.dtype)
    uniform = draws * 2 - 1  # in [-1, 1)
    angle = uniform[:, 0] * math.radians(degrees)
    factor = 1 + uniform[:, 1] * scale
    shift = uniform[:, 2:4] * 2 * jitter  # affine_grid's coordinates span 2 per side
    mirror = torch.where(uniform[:, 4] < 0, -1.0, 1.0).to(images.dtype) if flip else torch.ones_like(factor)
    cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor
    theta = torch.stack([torch.stack([cos * mirror, -sin, shift[:, 0]], 1),
                         torch.stack([sin * mirror, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
