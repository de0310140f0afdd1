"""log_inversion / log_class_models / log_channel_visualizations through real event files and TensorBoard's
real app: the pictures and numbers the tab reads back equal what is recomputed here from the model."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import assert_same_state, get_json, model_state, tensorboard_client
from tb_cnnviz import CNNViz
from tb_cnnviz.demo import DigitsNet, load_digits
from tb_cnnviz.methods import class_model
from tb_cnnviz.methods._hooks import layer_output


def blob_picture(client, run, key) -> np.ndarray:
    reply = client.get("/data/plugin/cnnviz/blob", query_string={"run": run, "key": key})
    assert reply.status_code == 200
    return np.asarray(Image.open(io.BytesIO(reply.data))).astype(float) / 255


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """Two logged steps of a DigitsNet: at initialisation and after a little training."""
    torch.manual_seed(0)
    images, labels = load_digits(size=16)
    model = DigitsNet()
    logdir = tmp_path_factory.mktemp("synthesis")
    probes = images[:4]
    viz = CNNViz(model, logdir / "run", probe_images=probes, probe_labels=labels[:4].tolist(), raise_errors=True)
    states = {}
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    for step in (0, 100):
        if step:
            for _ in range(step):
                batch = torch.randint(0, 1500, (64,))
                loss = torch.nn.functional.cross_entropy(model(images[batch]), labels[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        model.train()
        before = model_state(model)
        assert viz.log_inversion(step, layers=["conv1", "fc"], steps=30) == "probe 0"
        assert viz.log_class_models(step, classes=[0, 1, 2], steps=30) == "classes"
        assert viz.log_channel_visualizations(step, "relu2", channels=[0, 3], steps=30) == "relu2"
        assert_same_state(before, model_state(model))
        states[step] = {k: v.clone() for k, v in model.state_dict().items()}
    viz.close()
    return tensorboard_client(logdir, "false"), model, probes, states


def test_runs_list_the_new_kinds(logged):
    client, *_ = logged
    _, runs = get_json(client, "runs")
    entry = runs["runs"][0]
    assert entry["inversion"] == ["probe 0"] and entry["class_models"] == ["classes"] and entry["channel_images"] == ["relu2"]
    _, steps = get_json(client, "steps", run="run", kind="class_model", layer="classes")
    assert [s["step"] for s in steps["steps"]] == [0, 100]


def test_inversion_reads_back_the_original_and_reconstructions_on_one_scale(logged):
    client, model, probes, states = logged
    code, sample = get_json(client, "sample", run="run", kind="inversion", layer="probe 0", step=100)
    assert code == 200
    meta = sample["meta"]
    assert meta["layers"] == ["conv1", "fc"] and sample["images"] == 3
    original = probes[0, 0].numpy()
    lo, hi = original.min(), original.max()
    np.testing.assert_allclose(blob_picture(client, "run", sample["blobs"][0]), (original - lo) / (hi - lo), atol=1 / 255 + 1e-6)
    # the picture shown is the reconstruction the meta describes: its code error, recomputed from the
    # 8-bit picture (clamped to the original's range), is close to the logged one
    model.load_state_dict(states[100])
    model.eval()
    shown = torch.tensor(blob_picture(client, "run", sample["blobs"][1]), dtype=torch.float32)[None, None] * (hi - lo) + lo
    with torch.no_grad():
        target = layer_output(model, "conv1", probes[:1])
        error = ((layer_output(model, "conv1", shown) - target).norm() / target.norm()).item()
    assert error == pytest.approx(meta["code_error"][0], abs=0.05)
    correlation = np.corrcoef(shown.flatten().numpy(), probes[0].flatten().numpy())[0, 1]
    assert correlation == pytest.approx(meta["correlation"][0], abs=0.05)
    assert len(meta["curves"][0]) <= 30 and meta["curves"][0][-1] < meta["curves"][0][0]  # L-BFGS: evaluations
    assert meta["correlation"][0] > meta["correlation"][1]  # conv1 keeps more of the image than the logits


def test_class_models_read_back_with_their_class_probabilities(logged):
    client, model, _, states = logged
    pictures = {}
    for step in (0, 100):
        _, sample = get_json(client, "sample", run="run", kind="class_model", layer="classes", step=step)
        meta = sample["meta"]
        assert meta["classes"] == [0, 1, 2] and meta["class_names"] == [None, None, None] and sample["images"] == 3
        assert all(0 <= p <= 1 for p in meta["probability"])  # and exactly: the test below
        pictures[step] = np.stack([blob_picture(client, "run", key) for key in sample["blobs"]])
        assert pictures[step].shape == (3, 16, 16)
    difference = np.abs(pictures[0] - pictures[100]).mean()
    assert difference > 0.05  # the class models changed as the network learned


@pytest.mark.parametrize("step", [0, 100])
def test_class_model_probabilities_are_the_softmax_of_the_net_on_the_pictured_images(logged, step):
    """The logged probabilities, recomputed: the class models made again with the logged call's arguments,
    checked to be the images pictured, then the net's softmax on them (eval mode), at each image's class."""
    client, model, probes, states = logged
    _, sample = get_json(client, "sample", run="run", kind="class_model", layer="classes", step=step)
    meta = sample["meta"]
    model.load_state_dict(states[step])
    assert meta["input_range"] == pytest.approx([probes.min().item(), probes.max().item()], abs=1e-6)  # the probes'
    images = class_model(model, meta["classes"], size=(1, 16, 16), steps=30, seed=0,
                         input_range=tuple(meta["input_range"])).images.detach()
    flat = images.flatten(1)
    lo, hi = flat.min(dim=1).values[:, None, None, None], flat.max(dim=1).values[:, None, None, None]
    shown = np.stack([blob_picture(client, "run", key) for key in sample["blobs"]])
    np.testing.assert_allclose(shown, ((images - lo) / (hi - lo))[:, 0].numpy(), atol=0.5 / 255 + 1e-6)
    model.eval()
    with torch.no_grad():
        probabilities = torch.softmax(model(images).double(), dim=1)
    expected = [probabilities[i, c].item() for i, c in enumerate(meta["classes"])]
    np.testing.assert_allclose(meta["probability"], expected, rtol=5e-4, atol=1e-7)  # 4 digits in the JSON
    assert meta["predicted"] == probabilities.argmax(dim=1).tolist()


def test_channel_visualisations_read_back_in_the_probe_range_and_name_their_filter(logged):
    client, model, probes, _ = logged
    _, sample = get_json(client, "sample", run="run", kind="channel_vis", layer="relu2", step=100)
    meta = sample["meta"]
    assert meta["channels"] == [0, 3] and meta["filter_layer"] == "conv2"
    assert meta["input_range"] == pytest.approx([probes.min().item(), probes.max().item()], abs=1e-6)
    assert sample["images"] == 2 and blob_picture(client, "run", sample["blobs"][0]).shape == (16, 16)


def test_a_failing_call_warns_and_training_goes_on(tmp_path):
    model = DigitsNet()
    viz = CNNViz(model, tmp_path, probe_images=torch.randn(2, 1, 16, 16))
    with pytest.warns(UserWarning, match="log_channel_visualizations failed.*has no layer 'relu9'"):
        assert viz.log_channel_visualizations(0, "relu9") is None
    with pytest.warns(UserWarning, match="log_inversion failed.*image must be one image"):
        assert viz.log_inversion(0, image=torch.randn(2, 1, 16, 16)) is None
    viz.close()
