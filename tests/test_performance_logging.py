"""log_performance through real event files and TensorBoard's real app, including its own Scalars and PR Curves
plugins; figures checked against predictions made here and scikit-learn."""

import io
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import confusion_matrix as sklearn_confusion

from helpers import get_json, tensorboard_client

from tb_cnnviz import CNNViz
from tb_cnnviz.demo import DigitsNet, load_digits

CLASS_NAMES = [f"<b>digit {i}</b>" for i in range(10)]  # markup, to be shown as text


@pytest.fixture(scope="module")
def digits():
    images, labels = load_digits()
    return images[:600], labels[:600]


@pytest.fixture(scope="module")
def logged(tmp_path_factory, digits):
    images, labels = digits
    torch.manual_seed(0)
    model = DigitsNet()
    logdir = tmp_path_factory.mktemp("performance")
    darkness = (images.mean(dim=(1, 2, 3)) < images.mean()).tolist()
    with CNNViz(model, logdir / "run", raise_errors=True) as viz:
        data = ((images[i : i + 128], labels[i : i + 128]) for i in range(0, 600, 128))
        accuracies = viz.log_performance(data, 7, attributes={"dark": darkness, "noisy": [math.nan] * 10 + [1.0] * 590},
                                         class_names=CLASS_NAMES, examples=4, to_pixels=lambda x: x * 0.5 + 0.5)
    model.eval()
    with torch.no_grad():
        scores = model(images)
    return logdir, scores, accuracies, model


def test_figures_read_back_through_tensorboard_equal_independent_ones(logged, digits):
    logdir, scores, accuracies, _ = logged
    _, labels = digits
    predicted = scores.argmax(dim=1)
    client = tensorboard_client(logdir, "false")
    _, runs = get_json(client, "runs")
    assert runs["runs"][0]["performance"] == ["eval"]
    code, sample = get_json(client, "sample", run="run", kind="performance", layer="eval", step=7)
    assert code == 200
    meta = sample["meta"]
    assert meta["examples"] == meta["labelled"] == 600 and meta["class_names"] == CLASS_NAMES
    np.testing.assert_array_equal(meta["confusion"], sklearn_confusion(labels, predicted, labels=range(10)))
    top1 = (predicted == labels).double().mean().item()
    assert meta["top1"] == pytest.approx(top1, rel=1e-3) and accuracies["top1"] == pytest.approx(top1)
    top5 = (scores.topk(5, dim=1).indices == labels[:, None]).any(dim=1).double().mean().item()
    assert accuracies["top5"] == pytest.approx(top5)

    dark = meta["attributes"]["dark"]
    assert dark["kind"] == "categorical" and sum(entry["count"] for entry in dark["bins"]) == 600
    assert meta["attributes"]["noisy"]["excluded"] == 10
    assert set(meta["attributes"]) >= {"brightness", "contrast", "colourfulness", "texture_energy"}

    # The sprite holds the kept wrong examples, each really wrong.
    wrong = meta["wrong"]["examples"]
    assert wrong and all(predicted[e["index"]] == e["predicted"] != labels[e["index"]] == e["label"] for e in wrong)
    layout = meta["wrong"]["layout"]
    reply = client.get("/data/plugin/cnnviz/blob", query_string={"run": "run", "key": sample["blobs"][0]})
    sprite = np.asarray(Image.open(io.BytesIO(reply.data)))
    assert sprite.shape[0] == layout["rows"] * (layout["height"] + layout["gap"]) - layout["gap"]

    # The second sprite: each wrong example's saliency for the class it chose, here by hand.
    assert meta["wrong"]["saliency"] and len(sample["blobs"]) == 2
    reply = client.get("/data/plugin/cnnviz/blob", query_string={"run": "run", "key": sample["blobs"][1]})
    heat_sprite = np.asarray(Image.open(io.BytesIO(reply.data))).astype(float) / 255
    assert heat_sprite.shape == sprite.shape[:2]
    images, _ = digits
    model = logged[3]
    for example in wrong[:3]:
        pixels = images[example["index"] : example["index"] + 1].clone().requires_grad_(True)
        model(pixels)[0, example["predicted"]].backward()
        expected = pixels.grad[0].abs().amax(dim=0)
        expected = (expected / expected.max()).numpy()
        row, col = divmod(example["tile"], layout["cols"])
        top, left = row * (layout["height"] + layout["gap"]), col * (layout["width"] + layout["gap"])
        tile = heat_sprite[top : top + layout["height"], left : left + layout["width"]]
        np.testing.assert_allclose(tile, expected, atol=1 / 255 + 1e-6)

    # TensorBoard's own Scalars tab sees the accuracy.
    reply = client.get("/data/plugin/scalars/scalars", query_string={"run": "run", "tag": "cnnviz/accuracy/eval/top1"})
    assert reply.status_code == 200
    (point,) = json.loads(reply.data)
    assert point[1] == 7 and point[2] == pytest.approx(top1, rel=1e-6)


def test_pr_curves_read_back_through_tensorboards_pr_curve_plugin(logged, digits):
    logdir, scores, _, _ = logged
    _, labels = digits
    client = tensorboard_client(logdir, "false")
    tag = "cnnviz/pr_curve/eval/3/pr_curves"
    reply = client.get("/data/plugin/pr_curves/pr_curves", query_string={"run": "run", "tag": tag})
    assert reply.status_code == 200, reply.data
    (entry,) = json.loads(reply.data)["run"]
    assert entry["step"] == 7
    probability = scores.softmax(dim=1)[:, 3]
    bucket = (probability * 126).floor()
    kept = len(entry["true_positives"])
    assert kept == int(bucket.max()) + 1  # the plugin trims thresholds above every score
    for i in range(kept):
        called = bucket >= i
        tp = int((called & (labels == 3)).sum())
        assert entry["true_positives"][i] == tp
        assert entry["false_positives"][i] == int((called & (labels != 3)).sum())
        assert entry["recall"][i] == pytest.approx(tp / max(int((labels == 3).sum()), 1e-7), rel=1e-6)


def test_bad_input_is_named_and_label_free_data_still_logs(tmp_path, digits):
    images, labels = digits
    torch.manual_seed(0)
    viz = CNNViz(DigitsNet(), tmp_path / "run", raise_errors=True)
    batches = [(images[:100], labels[:100])]
    with pytest.raises(ValueError, match="class_names has 3 names but the model has 10 classes"):
        viz.log_performance(batches, 0, class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="attribute 'size' has 3 values but the data has 100 examples"):
        viz.log_performance(batches, 0, attributes={"size": [1, 2, 3]})
    with pytest.raises(ValueError, match=r"labels must be classes of the model, 0..9"):
        viz.log_performance([(images[:10], labels[:10] + 10)], 0)
    assert viz.log_performance([images[:100]], 1) == {}  # no labels: nothing to score...
    viz.close()
    client = tensorboard_client(tmp_path, "false")
    _, sample = get_json(client, "sample", run="run", kind="performance", layer="eval", step=1)
    assert "no labels" in sample["meta"]["why_empty"]  # ...and the tab says why
    assert sum(entry["count"] for entry in sample["meta"]["attributes"]["brightness"]["bins"]) == 100


def test_attributes_from_a_csv_and_saliency_concentration(tmp_path, digits):
    images, labels = digits
    rows = ["index,scanner,blur"] + [f"{i},{'old' if i % 3 == 0 else 'new'},{'' if i == 5 else i % 4}" for i in range(120)]
    (tmp_path / "attributes.csv").write_text("\n".join(rows) + "\n")
    torch.manual_seed(0)
    with CNNViz(DigitsNet(), tmp_path / "run", raise_errors=True) as viz:
        viz.log_performance([(images[:120], labels[:120], torch.arange(120))], 3,
                            attributes=tmp_path / "attributes.csv", saliency_concentration=True)
    client = tensorboard_client(tmp_path, "false")
    _, sample = get_json(client, "sample", run="run", kind="performance", layer="eval", step=3)
    binned = sample["meta"]["attributes"]
    assert [(b["bin"], b["count"]) for b in binned["scanner"]["bins"]] == [("old", 40), ("new", 80)]
    assert binned["blur"]["excluded"] == 1 and [b["bin"] for b in binned["blur"]["bins"]] == ["0", "1", "2", "3"]
    concentration = binned["saliency_concentration"]
    assert sum(b["count"] for b in concentration["bins"]) == 120
    assert all(0.1 <= b["bin"][0] <= b["bin"][1] <= 1 for b in concentration["bins"])  # the top 10% hold >= 10%


@pytest.mark.slow
def test_a_thousand_classes_log_ranked_confusions_and_a_bounded_set_of_pr_curves(tmp_path):
    """ImageNet-sized output: no 1000 x 1000 matrix in the JSON but its most confused pairs, and PR curves for
    the 20 chosen classes plus the micro-average, the choice recorded; checked against counts made here."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 1000))
    images = torch.randn(400, 3, 2, 2)
    labels = torch.randint(0, 1000, (400,))
    labels[:40] = 7  # a frequent class
    with CNNViz(model, tmp_path / "run", raise_errors=True) as viz:
        viz.log_performance([(images[i : i + 100], labels[i : i + 100]) for i in range(0, 400, 100)], 3, name="val")
    with torch.no_grad():
        predicted = model(images).argmax(dim=1)
    client = tensorboard_client(tmp_path, "false")
    _, sample = get_json(client, "sample", run="run", kind="performance", layer="val", step=3)
    meta = sample["meta"]
    assert meta["confusion"] is None and meta["classes"] == 1000
    matrix = sklearn_confusion(labels, predicted, labels=range(1000))
    np.fill_diagonal(matrix, 0)
    top = sorted(((-matrix[t, p], t, p) for t, p in zip(*np.nonzero(matrix))))[:50]
    assert [(-pair["count"], pair["true"], pair["predicted"]) for pair in meta["confused_pairs"]] == top
    chosen = meta["pr_curves"]
    assert chosen["of"] == 1000 and chosen["micro"] and len(chosen["classes"]) == 20 and 7 in chosen["classes"]
    tags = json.loads(client.get("/data/plugin/pr_curves/tags").data)["run"]
    assert sorted(tags) == sorted([f"cnnviz/pr_curve/val/{c}/pr_curves" for c in chosen["classes"]]
                                  + ["cnnviz/pr_curve/val/micro/pr_curves"])
    reply = client.get("/data/plugin/pr_curves/pr_curves", query_string={"run": "run", "tag": "cnnviz/pr_curve/val/micro/pr_curves"})
    (entry,) = json.loads(reply.data)["run"]
    assert entry["true_positives"][0] == 400 and entry["false_positives"][0] == 400 * 999  # threshold 0: every pair
