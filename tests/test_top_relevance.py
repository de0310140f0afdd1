"""Relevance-ranked top patches against a brute-force loop (one image at a time, torch.autograd.grad) and
Captum's LayerGradientXActivation; the model left as found, also on error; bad input named; read back
through TensorBoard's real WSGI app beside the activation ranking."""

import pytest
import torch
from torch import nn

from helpers import assert_same_state, get_json, model_state, tensorboard_client

from tb_cnnviz import CNNViz
from tb_cnnviz.methods import receptive_field, top_activations


@pytest.fixture
def net():
    """A conv layer ("3") followed by an in-place ReLU, so the captured map must be the layer's own copy."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                         nn.Conv2d(8, 6, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(6, 6, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5))


def dataset(count=30, size=16, seed=1):
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(count, 3, size, size, generator=generator)
    return images, torch.randint(0, 5, (count,), generator=generator)


def batches(images, labels, size):
    return [(images[i:i + size], labels[i:i + size]) for i in range(0, len(images), size)]


def brute_force(net, images, classes, layer_index, k):
    """Per image alone: the layer's map, the gradient of its class score there, their product; per channel
    the images sorted by its sum, and where the product is largest."""
    per_channel = [[] for _ in range(net[layer_index].out_channels)]
    for n in range(len(images)):
        feature = net[: layer_index + 1](images[n : n + 1]).detach().requires_grad_(True)
        score = net[layer_index + 1 :](feature.clone())[0, classes[n]]
        (gradient,) = torch.autograd.grad(score, feature)
        product = (feature * gradient)[0].detach()
        for channel, plane in enumerate(product):
            where = divmod(int(plane.flatten().argmax()), plane.shape[1])
            per_channel[channel].append((plane.sum().item(), n, where))
    return [sorted(items, key=lambda item: -item[0])[:k] for items in per_channel]


@pytest.mark.parametrize("target", ["label", "predicted"])
def test_equal_to_a_brute_force_ranking_one_image_at_a_time(net, target):
    images, labels = dataset()
    with torch.no_grad():
        predicted = net(images).argmax(1)
    classes = labels if target == "label" else predicted
    top = top_activations(net, batches(images, labels, 7), "3", k=4, rank="relevance", target=target)
    assert top.rank == "relevance" and top.target == target
    for channel, expected in enumerate(brute_force(net, images, classes, 3, 4)):
        assert top.image[channel].tolist() == [n for _, n, _ in expected]  # the same images, same order
        expected_values = torch.tensor([v for v, _, _ in expected])
        torch.testing.assert_close(top.values[channel], expected_values, rtol=1e-4, atol=1e-7)
        assert [tuple(p) for p in top.position[channel].tolist()] == [where for _, _, where in expected]
        assert top.classes[channel].tolist() == [int(classes[n]) for _, n, _ in expected]
    field = receptive_field(net, "3")
    assert top.patches.shape[-2:] == field.size  # the patch of the most relevant position, as for activations


def test_equal_to_captums_layer_gradient_x_activation(net):
    captum = pytest.importorskip("captum.attr")
    images, labels = dataset()
    top = top_activations(net, batches(images, labels, 10), "3", k=5, rank="relevance")
    assert top.target == "label"  # labelled data: each image's label, as zennit-crp's RelMax explains it
    attribution = captum.LayerGradientXActivation(net, net[3]).attribute(images, target=labels)
    relevance = attribution.detach().sum(dim=(2, 3))  # (N, C): a channel's contribution per image
    values, order = relevance.T.topk(5, dim=1)
    assert torch.equal(top.image, order)
    torch.testing.assert_close(top.values, values, rtol=1e-4, atol=1e-7)


def test_unlabelled_data_explains_the_predicted_class_and_ranks_differ_from_activation(net):
    images, labels = dataset()
    top = top_activations(net, [images[:15], images[15:]], "3", k=3, rank="relevance")
    assert top.target == "predicted"
    with torch.no_grad():
        assert set(top.classes.flatten().tolist()) <= set(net(images).argmax(1).tolist())
    fires = top_activations(net, [images[:15], images[15:]], "3", k=3)
    assert fires.rank == "activation" and fires.classes is None and not torch.equal(fires.image, top.image)


def test_the_model_is_left_as_found_also_when_the_data_fails(net):
    images, labels = dataset()
    net.train()
    net(images).sum().backward()  # gradients the training loop holds
    before = model_state(net)
    rng = torch.get_rng_state()
    top_activations(net, batches(images, labels, 10), "3", k=2, rank="relevance")
    assert_same_state(before, model_state(net))

    def failing():
        yield images[:5], labels[:5]
        raise RuntimeError("the loader broke")

    with pytest.raises(RuntimeError, match="the loader broke"):
        top_activations(net, failing(), "3", k=2, rank="relevance")
    assert_same_state(before, model_state(net))
    assert torch.equal(torch.get_rng_state(), rng)
    with torch.inference_mode():  # called from a no-grad or inference-mode block: still has its gradient
        inside = top_activations(net, batches(images, labels, 10), "3", k=2, rank="relevance")
    assert inside.values.abs().sum() > 0


def test_bad_input_is_named(net, tmp_path):
    images, labels = dataset(count=4)
    with pytest.raises(ValueError, match="rank must be 'activation' .* or 'relevance' .*; got 'relevant'"):
        top_activations(net, [images], "3", rank="relevant")
    with pytest.raises(ValueError, match="target must be 'label' .*, 'predicted' .* or None .*; got 'true'"):
        top_activations(net, [images], "3", rank="relevance", target="true")
    with pytest.raises(ValueError, match=r"target='label' needs \(images, labels\) batches.*'predicted'"):
        top_activations(net, [images], "3", rank="relevance", target="label")
    with pytest.raises(ValueError, match="target='predicted' .* needs rank='relevance'"):
        top_activations(net, [images], "3", target="predicted")
    with pytest.raises(ValueError, match="directions are a control of the activation ranking"):
        top_activations(net, [images], "3", rank="relevance", directions=torch.eye(6)[:2])
    with pytest.raises(ValueError, match="class scores of shape"):
        top_activations(net[:5], [images], "3", rank="relevance")  # no classifier: no class score to explain
    with CNNViz(net, tmp_path / "run", raise_errors=True) as viz:
        with pytest.raises(ValueError, match="rank must be 'activation'"):
            viz.log_top_activations([(images, labels)], "3", 0, rank="Relevance")


def test_both_rankings_read_back_through_tensorboard(net, tmp_path):
    images, labels = dataset()
    data = batches(images, labels, 8)
    names = ["a", "b", "c", "d", "e"]
    with CNNViz(net, tmp_path / "run", raise_errors=True, max_channels=4) as viz:
        assert viz.log_top_activations(data, "3", 2, k=3) == ["3"]
        written = viz.log_top_activations(data, "3", 2, k=3, rank="relevance", class_names=names)
        assert written == ["3 (relevance)"]
    reference = top_activations(net, data, "3", k=3, rank="relevance")
    for load_fast in ("false", "true"):
        client = tensorboard_client(tmp_path, load_fast)
        _, runs = get_json(client, "runs")
        assert runs["runs"][0]["top_activations"] == ["3", "3 (relevance)"]
        _, fires = get_json(client, "sample", run="run", kind="top_activations", layer="3", step=2)
        assert fires["meta"]["rank"] == "activation"
        _, matters = get_json(client, "sample", run="run", kind="top_activations", layer="3 (relevance)",
                              step=2)
        meta = matters["meta"]
        assert (meta["rank"], meta["target"], meta["source_layer"]) == ("relevance", "label", "3")
        assert meta["class_names"] == names
        for unit in meta["units"]:
            channel = unit["unit"]
            positive = int((reference.values[channel] > 0).sum())
            assert unit["images"] == reference.image[channel, :positive].tolist()
            assert unit["classes"] == reference.classes[channel, :positive].tolist()
            assert unit["top_class"] in unit["classes"] or not unit["classes"]
