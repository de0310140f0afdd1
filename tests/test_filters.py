"""The filter noise score: analytic cases and an independent fine-grid FFT reference."""

import math

import pytest
import torch

from tb_cnnviz.methods.activations.filters import NOISE_THRESHOLD, high_frequency_share, noise_score


def fine_grid_share(maps: torch.Tensor, size: int = 512) -> torch.Tensor:
    """Reference: sample the DTFT on a fine grid by zero-padded FFT and count the energy outside |f| <= 1/4."""
    energy = torch.fft.fft2(maps.double(), s=(size, size)).abs().square().sum(dim=-3)
    f = torch.fft.fftfreq(size, dtype=torch.float64)
    high = (f[:, None] ** 2 + f[None, :] ** 2) > 1 / 16
    return (energy * high).sum(dim=(-2, -1)) / energy.sum(dim=(-2, -1))


def gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g[:, None] * g[None, :]).float()


def test_smooth_filter_scores_low_and_noisy_filter_high():
    torch.manual_seed(0)
    smooth = gaussian_kernel(7, 1.5).expand(3, 7, 7)
    noisy = torch.randn(3, 7, 7)
    scores = noise_score(torch.stack([smooth, noisy]))
    assert scores[0] < 0.05
    assert scores[1] > NOISE_THRESHOLD
    assert scores[0] < NOISE_THRESHOLD < scores[1]


def test_white_noise_scores_the_area_outside_the_disc():
    torch.manual_seed(1)
    scores = high_frequency_share(torch.randn(200, 1, 32, 32))
    assert scores.mean().item() == pytest.approx(1 - math.pi / 16, abs=0.01)


# Kernel-sized maps take the quadratic form, 12 x 12 and larger the FFT: both against the same reference.
@pytest.mark.parametrize("shape", [(5, 3, 3, 3), (4, 2, 7, 7), (2, 1, 5, 3), (3, 8, 1, 1), (3, 2, 12, 12)])
def test_matches_a_fine_grid_fft(shape):
    torch.manual_seed(2)
    weight = torch.randn(shape)
    torch.testing.assert_close(noise_score(weight).double(), fine_grid_share(weight), atol=2e-3, rtol=0)


def test_zero_filter_scores_zero_and_bad_shapes_are_refused():
    assert noise_score(torch.zeros(2, 3, 3, 3)).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="out, in, kH, kW"):
        noise_score(torch.zeros(3, 3, 3))
