"""Accuracy by class, by attribute and by confidence, against independent references: scikit-learn's metrics,
scipy's Wilson interval, TensorBoard's own PR-curve summary, brute force, and images built to have known
attributes."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import binomtest
from sklearn.metrics import confusion_matrix as sklearn_confusion
from sklearn.metrics import precision_recall_fscore_support
from torch import nn

from helpers import assert_same_state, model_state

from tb_cnnviz.methods import (
    accuracy_by,
    calibration,
    class_metrics,
    confused_pairs,
    confusion_matrix,
    evaluate,
    image_attributes,
    micro_histograms,
    pr_curve_classes,
    pr_curve_counts,
    saliency_concentration,
    wilson_interval,
)


class ScoresAreThePixels(nn.Module):
    """Images (N, 1, 1, C) are the class scores themselves: any predictions a test wants."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return x.flatten(1) * self.scale


class BrightMeansOne(nn.Module):
    """Says class 1 for bright images (mean > 0.5) and class 0 for dark ones."""

    def forward(self, x):
        brightness = x.mean(dim=(1, 2, 3))
        return torch.stack([0.5 - brightness, brightness - 0.5], dim=1) * 20


def batches(tensors, size):
    """A generator, as a streamed data set is: no len(), no random access."""
    for start in range(0, len(tensors[0]), size):
        yield tuple(t[start : start + size] for t in tensors)


def random_predictions(n=500, classes=7, seed=0):
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(n, classes, generator=generator) * 2
    labels = torch.randint(0, classes, (n,), generator=generator)
    scores[torch.arange(n), labels] += 1.5  # better than chance
    return scores, labels


def test_confusion_and_class_metrics_equal_scikit_learn():
    scores, labels = random_predictions()
    model = ScoresAreThePixels()
    before = model_state(model)
    result = evaluate(model, batches((scores.view(-1, 1, 1, 7), labels), 64))
    assert_same_state(before, model_state(model))
    predicted = scores.argmax(dim=1)
    assert torch.equal(result.predicted, predicted) and torch.equal(result.labels, labels)
    confusion = confusion_matrix(result.labels, result.predicted, result.classes)
    np.testing.assert_array_equal(confusion.numpy(), sklearn_confusion(labels, predicted, labels=range(7)))
    metrics = class_metrics(confusion)
    precision, recall, _, support = precision_recall_fscore_support(labels, predicted, labels=range(7), zero_division=0)
    np.testing.assert_allclose(metrics["precision"], precision)
    np.testing.assert_allclose(metrics["recall"], recall)
    np.testing.assert_array_equal(metrics["support"], support)
    top5 = scores.topk(5, dim=1).indices
    assert result.topk_accuracy(5) == pytest.approx((top5 == labels[:, None]).any(1).double().mean().item())
    assert result.topk_accuracy(1) == pytest.approx((predicted == labels).double().mean().item())


@pytest.mark.parametrize("successes,trials", [(0, 10), (3, 10), (10, 10), (57, 80), (1, 1), (500, 1000)])
def test_wilson_interval_equals_scipy(successes, trials):
    reference = binomtest(successes, trials).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(successes, trials) == pytest.approx((reference.low, reference.high), abs=1e-12)


def test_accuracy_follows_brightness_by_construction_through_a_streamed_data_set():
    generator = torch.Generator().manual_seed(1)
    levels = torch.rand(400, generator=generator)
    images = levels.view(-1, 1, 1, 1).expand(-1, 1, 8, 8).clone()
    labels = torch.ones(400, dtype=torch.long)  # right exactly when bright
    result = evaluate(BrightMeansOne(), batches((images, labels), 50), topk=(1,), attributes=True)
    torch.testing.assert_close(result.attributes["brightness"], levels)
    binned = accuracy_by(result.attributes["brightness"], result.correct, bins=4)
    assert binned["kind"] == "numeric" and binned["excluded"] == 0
    accuracies = [entry["accuracy"] for entry in binned["bins"]]
    counts = [entry["count"] for entry in binned["bins"]]
    assert sum(counts) == 400 and all(count == 100 for count in counts)  # quantile bins
    low, median = binned["edges"][1], binned["edges"][2]
    second = levels[(levels >= low) & (levels < median)]
    expected_low = (second > 0.5).double().mean().item()  # the second quartile straddles 0.5
    assert accuracies[0] == 0 and accuracies[3] == 1 and accuracies[1] == pytest.approx(expected_low)
    assert all(entry["low"] <= entry["accuracy"] <= entry["high"] for entry in binned["bins"])


def test_nan_and_categorical_attributes():
    correct = torch.tensor([1, 0, 1, 1, 0, 1], dtype=torch.bool)
    numeric = accuracy_by(torch.tensor([0.1, float("nan"), 0.3, 0.9, float("nan"), 0.5]), correct, bins=2)
    assert numeric["excluded"] == 2 and sum(entry["count"] for entry in numeric["bins"]) == 4
    categories = accuracy_by(["indoor", "outdoor", "indoor", "night", "outdoor", "night"], correct)
    assert categories["kind"] == "categorical"
    assert [(e["bin"], e["count"], e["correct"]) for e in categories["bins"]] == [
        ("indoor", 2, 2), ("outdoor", 2, 0), ("night", 2, 2)]
    with pytest.raises(ValueError, match="the attribute has 3 values but there are 6 examples"):
        accuracy_by([1.0, 2.0, 3.0], correct)


def test_attributes_of_images_built_to_have_known_values():
    grey = torch.full((1, 3, 16, 16), 0.25)
    red = torch.zeros(1, 3, 16, 16)
    red[:, 0] = 1.0
    checkerboard = ((torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2).float().view(1, 1, 16, 16).expand(1, 3, 16, 16)
    ramp = torch.linspace(0, 1, 16).view(1, 1, 1, 16).expand(1, 3, 16, 16)
    values = image_attributes(torch.cat([grey, red, checkerboard, ramp]))
    torch.testing.assert_close(values["brightness"], torch.tensor([0.25, 0.299, 0.5, 0.5]), atol=1e-6, rtol=0)
    torch.testing.assert_close(values["contrast"][:3], torch.tensor([0.0, 0.0, 0.5]), atol=1e-6, rtol=0)
    assert values["colourfulness"][0] == pytest.approx(0, abs=1e-4)
    assert values["colourfulness"][1] == pytest.approx(0.3 * math.hypot(255, 127.5), rel=1e-5)  # rg = 255, yb = 127.5
    assert values["colourfulness"][2] == pytest.approx(0, abs=1e-4)
    assert values["texture_energy"][0] == 0  # flat: no energy at all
    assert values["texture_energy"][2] > 0.95  # all energy at the Nyquist frequency
    assert values["texture_energy"][3] < 0.1  # a smooth ramp
    white = torch.rand(64, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    share = image_attributes(white)["texture_energy"].mean().item()
    assert share == pytest.approx(1 - math.pi / 16, abs=0.03)  # flat spectrum: the area outside the disc |f| <= 1/4
    concentrated = torch.zeros(2, 10, 10)
    concentrated[0, 0, :5] = 1.0  # 5 of 100 pixels hold everything
    concentrated[1] = 1.0  # spread evenly: the top 10% hold 10%
    torch.testing.assert_close(saliency_concentration(concentrated), torch.tensor([1.0, 0.1]))


def test_calibration_on_analytic_cases():
    confident = calibration(torch.full((8,), 0.75), torch.tensor([1, 1, 1, 0, 1, 1, 1, 0]))
    assert confident["ece"] == pytest.approx(0.0, abs=1e-12)
    overconfident = calibration(torch.full((10,), 0.9), torch.tensor([1, 0] * 5))
    assert overconfident["ece"] == pytest.approx(0.4)
    assert overconfident["count"][13] == 10 and overconfident["accuracy"][13] == pytest.approx(0.5)


def test_streamed_pr_curves_equal_a_threshold_by_threshold_count():
    """TensorBoard's PR-curve summary (``pr_curve.summary.pb``, which needs TensorFlow to run) calls an example
    positive at threshold i when floor(p * (T - 1)) >= i; counted here one threshold at a time."""
    scores, labels = random_predictions(n=300, classes=4, seed=2)
    result = evaluate(ScoresAreThePixels(), batches((scores.view(-1, 1, 1, 4), labels), 32), pr_curves=True)
    counts = pr_curve_counts(result.positive_histogram, result.negative_histogram)
    probabilities = scores.softmax(dim=1)
    thresholds = counts["tp"].shape[1]
    assert thresholds == 127
    for c in range(4):
        bucket = (probabilities[:, c] * (thresholds - 1)).floor()
        positive = labels == c
        for i in range(thresholds):
            called = bucket >= i
            tp, fp = int((called & positive).sum()), int((called & ~positive).sum())
            fn, tn = int((~called & positive).sum()), int((~called & ~positive).sum())
            assert (counts["tp"][c, i], counts["fp"][c, i], counts["fn"][c, i], counts["tn"][c, i]) == (tp, fp, fn, tn)
            assert counts["precision"][c, i] == pytest.approx(tp / max(tp + fp, 1e-7))
            assert counts["recall"][c, i] == pytest.approx(tp / max(tp + fn, 1e-7))


def test_many_classes_ranked_confusions_bounded_pr_classes_and_the_micro_average():
    scores, labels = random_predictions(n=600, classes=40, seed=5)
    predicted = scores.argmax(dim=1)
    matrix = sklearn_confusion(labels, predicted, labels=range(40))
    cells = sorted(((-matrix[t, p], t, p) for t in range(40) for p in range(40) if t != p and matrix[t, p] > 0))
    pairs = confused_pairs(torch.as_tensor(matrix), k=15)
    assert [(-c["count"], c["true"], c["predicted"]) for c in pairs] == cells[:15]
    assert pairs[0]["share"] == pytest.approx(matrix[pairs[0]["true"], pairs[0]["predicted"]] / matrix[pairs[0]["true"]].sum())

    support = torch.tensor([5, 0, 9, 9, 1, 7, 3, 2])
    accuracy = torch.tensor([0.2, 0.0, 0.9, 0.1, 0.1, 1.0, 0.5, 0.0])
    chosen = pr_curve_classes(support, accuracy, limit=4)  # worst two among classes with examples, then the most frequent
    assert chosen["worst"] == [7, 3] and chosen["most_frequent"] == [2, 5] and chosen["classes"] == [2, 3, 5, 7]
    assert pr_curve_classes(support, accuracy, limit=8)["classes"] == list(range(8))

    result = evaluate(ScoresAreThePixels(), batches((scores.view(-1, 1, 1, 40), labels), 64), pr_curves=True)
    micro = pr_curve_counts(*micro_histograms(result.positive_histogram, result.negative_histogram))
    buckets = (scores.softmax(dim=1) * 126).floor().flatten()  # every (example, class) pair pooled
    positive = (labels[:, None] == torch.arange(40)[None, :]).flatten()
    for i in (0, 1, 10, 63, 126):
        called = buckets >= i
        assert micro["tp"][0, i] == int((called & positive).sum()) and micro["fp"][0, i] == int((called & ~positive).sum())


def test_most_confidently_wrong_examples_equal_brute_force():
    scores, labels = random_predictions(n=400, classes=5, seed=3)
    images = scores.view(-1, 1, 1, 5)
    result = evaluate(ScoresAreThePixels(), batches((images, labels), 37), wrong_examples=3, thumbnail=1,
                      to_pixels=lambda x: x.sigmoid())
    probabilities = scores.softmax(dim=1)
    confidence, predicted = probabilities.max(dim=1)
    for label in range(5):
        wrong = torch.nonzero((labels == label) & (predicted != label)).flatten()
        expected = wrong[confidence[wrong].argsort(descending=True)[:3]].tolist()
        kept = result.wrong.get(label, [])
        assert [example.index for example in kept] == expected
        for example in kept:
            assert example.predicted == predicted[example.index] and example.label == label
            assert example.thumbnail.shape == (1, 1, 1)


def test_bad_input_says_what_is_right():
    scores, labels = random_predictions(n=20, classes=3)
    model = ScoresAreThePixels()
    with pytest.raises(ValueError, match=r"labels must be classes of the model, 0..2"):
        evaluate(model, batches((scores.view(-1, 1, 1, 3), labels + 5), 8))
    with pytest.raises(TypeError, match=r"data must yield image tensors, \(images, labels\)"):
        evaluate(model, [{"image": scores}])
    with pytest.raises(ValueError, match="topk must be positive ints"):
        evaluate(model, [scores.view(-1, 1, 1, 3)], topk=(0,))
    with pytest.raises(ValueError, match="data yielded no batches"):
        evaluate(model, [])
    unlabelled = evaluate(model, [scores.view(-1, 1, 1, 3)])  # label-free: predictions still there
    assert not unlabelled.labelled.any() and math.isnan(unlabelled.topk_accuracy(1))
    assert unlabelled.true_probability.isnan().all()
