"""Activation histograms on signed log-spaced bins, against numpy's histogram on the same edges."""

import numpy as np
import pytest
import torch

from tb_cnnviz.methods.activations.histograms import activation_histogram, symmetric_log_edges


def test_the_edges_are_symmetric_log_spaced_and_reach_the_tails():
    edges = symmetric_log_edges(1e-2, 1e2, per_decade=2).numpy()
    assert len(edges) == 2 * (4 * 2 + 1) + 1 + 2  # 9 per side, zero, the two tails
    inner = edges[1:-1]
    np.testing.assert_allclose(inner, -inner[::-1], rtol=0, atol=0)  # symmetric about 0
    positive = inner[inner > 0]
    np.testing.assert_allclose(np.diff(np.log10(positive)), 0.5, rtol=1e-12)  # 2 bins a decade
    assert positive[0] == pytest.approx(1e-2) and positive[-1] == pytest.approx(1e2)
    assert edges[0] == -np.finfo(np.float32).max and edges[-1] == np.finfo(np.float32).max


@pytest.mark.parametrize("seed", range(3))
def test_counts_equal_numpy_histogram_for_signed_heavy_tailed_values(seed):
    generator = torch.Generator().manual_seed(seed)
    values = torch.randn(4, 16, 9, 9, generator=generator) * torch.logspace(-5, 5, 16).view(1, 16, 1, 1)
    values[0, 0, 0, :3] = torch.tensor([0.0, 1e-4, -1e-4])  # exactly on edges
    found = activation_histogram(values)
    expected, _ = np.histogram(values.double().numpy().ravel(), bins=found.edges.numpy())
    np.testing.assert_array_equal(found.counts.numpy(), expected)
    assert found.counts.sum().item() == values.numel() and found.nonfinite.tolist() == [0, 0, 0]


def test_nan_and_infinities_are_counted_apart_never_dropped_or_raised():
    values = torch.tensor([1.0, float("nan"), float("inf"), float("-inf"), float("nan"), -3.0])
    found = activation_histogram(values)
    assert found.nonfinite.tolist() == [2, 1, 1]
    assert found.counts.sum().item() == 2
    expected, _ = np.histogram([1.0, -3.0], bins=found.edges.numpy())
    np.testing.assert_array_equal(found.counts.numpy(), expected)


def test_bad_input_says_what_is_right():
    with pytest.raises(TypeError, match="floating-point tensor"):
        activation_histogram(torch.arange(5))
    with pytest.raises(ValueError, match="strictly increasing"):
        activation_histogram(torch.rand(5), edges=torch.tensor([0.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="0 < smallest < largest"):
        symmetric_log_edges(1.0, 0.5)
