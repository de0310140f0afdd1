"""The image parameterisation of images made by the network (decorrelated colour, 1/f Fourier space, transform
robustness) and the early-stopping rule, checked against numpy and against answers worked on paper."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tb_cnnviz.methods.synthesis.image_parameterization import (IMAGENET_COLOUR_SQRT, ImageParameterization,
                                                                colour_correlation_sqrt, random_transform)
from tb_cnnviz.methods.synthesis.input_optimization import stopped_improving


def test_the_measured_colour_root_squares_to_the_data_covariance_up_to_scale():
    generator = torch.Generator().manual_seed(0)
    mixing = torch.tensor([[1.0, 0.5, 0.2], [0.0, 1.0, 0.4], [0.0, 0.0, 0.3]])
    images = torch.einsum("ij,njhw->nihw", mixing, torch.randn(20, 3, 8, 8, generator=generator))
    root = colour_correlation_sqrt(images)
    pixels = images.transpose(0, 1).flatten(1).numpy()
    covariance = np.cov(pixels)
    product = (root @ root.T).numpy()
    np.testing.assert_allclose(product / product.max(), covariance / covariance.max(), atol=1e-5)
    assert root.norm(dim=0).max().item() == pytest.approx(1.0)


def test_imagenet_colour_is_lucids_matrix_normalised_by_its_largest_column():
    param = ImageParameterization((1, 3, 4, 4), torch.Generator().manual_seed(0))
    lucid = np.array(IMAGENET_COLOUR_SQRT)
    np.testing.assert_allclose(param.colour.numpy(), lucid / np.linalg.norm(lucid, axis=0).max(), rtol=1e-6)
    grey = ImageParameterization((1, 1, 4, 4), torch.Generator().manual_seed(0))
    assert grey.colour is None  # one channel: nothing to decorrelate


def test_one_frequency_of_the_spectrum_is_a_cosine_scaled_by_one_over_f():
    param = ImageParameterization((1, 1, 16, 16), torch.Generator().manual_seed(0), colour=None, decay=1.0)
    with torch.no_grad():
        param.variables.zero_()
        param.variables[0, 0, 0, 2, 0] = 1.0  # real part of frequency (0, 2/16): f = 1/8
        image = param.unbounded()[0, 0]
    columns = torch.arange(16.0)
    # orthonormal inverse real FFT of one coefficient (and its mirror): 2 cos(2 pi k x / N) / sqrt(N*N), / 4
    expected = (8.0 * 2 * torch.cos(2 * math.pi * 2 * columns / 16) / 16 / 4).expand(16, 16)
    torch.testing.assert_close(image, expected, atol=1e-5, rtol=0)


def test_images_stay_inside_the_input_range():
    param = ImageParameterization((2, 3, 8, 8), torch.Generator().manual_seed(0), input_range=(-2.0, 3.0))
    with torch.no_grad():
        param.variables.mul_(1e4)
        images = param()
    assert images.min() >= -2.0 and images.max() <= 3.0 and images.std() > 1


def test_random_transforms_keep_the_centre_and_are_the_identity_when_off():
    images = torch.rand(4, 3, 9, 9, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(1)
    assert random_transform(images, generator, jitter=0, scale=0, degrees=0) is images
    turned = random_transform(images, generator, jitter=0, scale=0.2, degrees=20)
    torch.testing.assert_close(turned[..., 4, 4], images[..., 4, 4])  # the centre is the fixed point
    assert not torch.allclose(turned, images)
    twins = random_transform(images[:1].expand(2, -1, -1, -1), generator)
    assert not torch.allclose(twins[0], twins[1])  # one draw per image
    shifted = random_transform(images, torch.Generator().manual_seed(2), jitter=0.25, scale=0, degrees=0)
    assert not torch.allclose(shifted[..., 4, 4], images[..., 4, 4])


@pytest.mark.parametrize("losses, tolerance, stops", [
    ([10, 5, 3, 2, 1.5, 1.2], 0.01, False),             # still falling fast
    ([10, 5, 4, 4.0, 3.99, 4.01, 3.995], 0.01, True),   # the last 3 gained 0.005 of the 6 before: < 1%
    ([10, 5, 4, 3.9, 3.8, 3.7], 0.05, True),            # 0.3 gained after 6.1: 4.9% < 5%
    ([10, 5, 4, 3.9, 3.8, 3.7], 0.04, False),           # ... but not < 4%
    ([1, 1, 1, 1, 1, 1], 0.01, False),                  # never improved: no scale to judge by, keep going
    ([10, 5, 5, 5], 0.01, False),                       # too few windows to judge (patience 3 + 1)
    ([-3, -5, -6, -6, -6, -6], 0.01, True),             # the offset and sign of the loss do not matter
])
def test_the_early_stopping_rule(losses, tolerance, stops):
    assert stopped_improving(losses, tolerance) is stops
