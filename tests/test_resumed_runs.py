"""A run resumed from a checkpoint into the same log directory: every route answers one value per step, the
latest written, in both loaders.

The first process trains 5 steps (0-4) logging every step and dies; the second loads the checkpoint of step 1
and trains on from step 2 with ``purge_step=2``. The expected answers are read straight from the event files:
the first process's records before step 2 and everything the second one wrote.
"""

from __future__ import annotations

import copy
import json
import time

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.util import tensor_util
from torch.utils.tensorboard import SummaryWriter

from helpers import get_json, tensorboard_client

from tb_cnnviz import CNNViz, metadata
from tb_cnnviz.thinning import base_tag

RESUME = 2


def _train(net, optimizer, writer, viz, steps, seed, filter_steps=None):
    generator = torch.Generator().manual_seed(seed)  # the resumed process sees other batches: other values
    for step in steps:
        loss = net(torch.rand(8, 1, 10, 10, generator=generator) - 0.3).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        writer.add_scalar("loss", loss.item(), step)
        viz.step(step)
        viz.log_activations(step)
        viz.log_saliency(step, method="saliency")
        if filter_steps is None or step in filter_steps:
            viz.log_filters(step)


def _records(paths) -> dict[str, dict[int, object]]:
    """tag (a picture series' slot tags as one) -> step -> the summary value written last, over ``paths`` in order."""
    found: dict[str, dict[int, object]] = {}
    for path in paths:
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                ours = value.metadata.plugin_data.plugin_name in (metadata.PLUGIN_NAME, metadata.PICTURES_PLUGIN_NAME)
                tag = base_tag(value.tag)  # a picture series' slot tags (tb_cnnviz.thinning) as one
                if ours or tag in found:
                    found.setdefault(tag, {})[event.step] = value
    return found


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, request):
    """The log directory of a run resumed at step 2, and what each tag should read back."""
    from conftest import TinyNet

    logdir = tmp_path_factory.mktemp("resumed")
    probe = torch.rand(2, 1, 10, 10, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(0)
    net = TinyNet()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    writer = SummaryWriter(str(logdir / "run"))
    viz = CNNViz(net, writer, probe_images=probe, raise_errors=True)
    viz.watch_dead_filters(every=1)
    checkpoint = None
    for step in range(5):
        _train(net, optimizer, writer, viz, [step], seed=step)
        if step == RESUME - 1:
            checkpoint = copy.deepcopy({"net": net.state_dict(), "optimizer": optimizer.state_dict()})
    viz.close()
    writer.close()  # the first process dies after step 4
    first = sorted((logdir / "run").glob("events.*"))

    # TensorBoard reads a run's files in name order: the resumed process's file must sort after the first's, as it
    # does across processes; in one process in the same second the names differ only by a counter (".9" > ".10")
    time.sleep(1.0 - time.time() % 1.0 + 0.01)
    torch.manual_seed(1)
    net = TinyNet()
    net.load_state_dict(checkpoint["net"])
    writer = SummaryWriter(str(logdir / "run"))
    viz = CNNViz(net, writer, probe_images=probe, raise_errors=True, purge_step=RESUME)
    viz.watch_dead_filters(every=1)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    optimizer.load_state_dict(checkpoint["optimizer"])
    _train(net, optimizer, writer, viz, range(RESUME, 6), seed=100, filter_steps={2, 5})
    viz.close()
    writer.close()
    second = [p for p in sorted((logdir / "run").glob("events.*")) if p not in first]

    before, after = _records(first), _records(second)
    expected = {tag: {**{s: v for s, v in by_step.items() if s < RESUME}, **after.get(tag, {})}
                for tag, by_step in before.items()}
    return logdir, expected


@pytest.fixture(scope="module", params=["false", "true"], ids=["python_loader", "rust_data_server"])
def client(request, resumed):
    return tensorboard_client(resumed[0], request.param)


def _content(value) -> metadata.PluginContent:
    return metadata.parse_plugin_content(value.metadata.plugin_data.content)


@pytest.mark.slow
def test_every_route_answers_the_latest_write_of_each_step(client, resumed):
    _, expected = resumed
    status, runs = get_json(client, "runs")
    assert status == 200 and [r["run"] for r in runs["runs"]] == ["run"]
    checked = 0
    for tag, by_step in expected.items():
        content = _content(next(iter(by_step.values())))
        kind, layer = content.kind, content.layer
        assert layer in runs["runs"][0][kind]
        steps = sorted(by_step)
        if kind == metadata.DEAD:
            status, dead = get_json(client, "dead", run="run", layer=layer)
            assert status == 200 and dead["steps"] == steps
            for row, step in zip(dead["rates"], steps):
                np.testing.assert_allclose(row, tensor_util.make_ndarray(by_step[step].tensor), atol=1e-4)
            status, summary = get_json(client, "dead_summary", run="run")
            assert summary["layers"][layer]["step"] == steps[-1]
            continue
        if kind == "distribution":
            status, distribution = get_json(client, "distribution", run="run", layer=layer)
            assert status == 200 and distribution["steps"] == steps
            for row, step in zip(distribution["counts"], steps):
                np.testing.assert_array_equal(row, tensor_util.make_ndarray(by_step[step].tensor)[0])
            continue
        status, listed = get_json(client, "steps", run="run", kind=kind, layer=layer)
        assert status == 200 and [s["step"] for s in listed["steps"]] == steps, (tag, listed)
        for step in steps:
            blobs = by_step[step].tensor.string_val
            status, sample = get_json(client, "sample", run="run", kind=kind, layer=layer, step=step)
            assert status == 200 and sample["meta"] == json.loads(blobs[0]), (tag, step)
            picture = client.get("/data/plugin/cnnviz/image",
                                 query_string={"run": "run", "kind": kind, "layer": layer, "step": step, "index": 0})
            assert picture.status_code == 200 and picture.data == blobs[1], (tag, step)
            by_key = client.get("/data/plugin/cnnviz/blob", query_string={"run": "run", "key": sample["blobs"][0]})
            assert by_key.data == blobs[1]
            checked += 1
    assert checked >= 3 * 4  # activations, filters and saliency pictures at several steps
    assert sorted(expected[metadata.tag(metadata.FILTERS, "conv1")]) == [0, 1, 2, 5]  # the dead run's 3 and 4 are gone


@pytest.mark.slow
def test_tensorboards_own_scalars_follow_the_resumed_run_too(client, resumed):
    reply = client.get("/data/plugin/scalars/scalars", query_string={"run": "run", "tag": "loss"})
    assert [step for _, step, _ in json.loads(reply.data)] == [0, 1, 2, 3, 4, 5]


@pytest.fixture(scope="module")
def resumed_without_marker(tmp_path_factory):
    """Dead-filter rates of a run resumed at step 2 without ``purge_step``: steps 2-4 are in the files twice."""
    from conftest import TinyNet

    logdir = tmp_path_factory.mktemp("no_marker")
    written = []
    for steps, seed in ((range(0, 5), 0), (range(RESUME, 6), 1)):
        torch.manual_seed(seed)
        net = TinyNet()
        with torch.no_grad():
            net.conv1.bias.sub_(0.2 * seed)  # the resumed process's rates differ from the first one's
        viz = CNNViz(net, logdir / "run", raise_errors=True)
        viz.watch_dead_filters(every=1)
        for step in steps:
            net(torch.rand(4, 1, 6, 6) - 0.5)
            viz.step(step)
        viz.close()
        seen = {p for files in written for p in files}
        written.append([p for p in sorted((logdir / "run").glob("events.*")) if p not in seen])
    written = [_records(files) for files in written]
    tag = metadata.tag(metadata.DEAD, "relu1")
    first, again = (tensor_util.make_ndarray(w[tag][RESUME].tensor) for w in written)
    assert not np.allclose(first, again)  # the two writes of step 2 can be told apart
    expected = {**{s: v for s, v in written[0][tag].items() if s < RESUME}, **written[1][tag]}
    return logdir, expected


@pytest.mark.slow
@pytest.mark.parametrize("load_fast", ["false", "true"], ids=["python_loader", "rust_data_server"])
def test_without_the_marker_dead_rates_still_come_once_per_step_the_latest(resumed_without_marker, load_fast):
    logdir, expected = resumed_without_marker
    client = tensorboard_client(logdir, load_fast)
    status, dead = get_json(client, "dead", run="run", layer="relu1")
    assert status == 200 and dead["steps"] == [0, 1, 2, 3, 4, 5]
    for row, step in zip(dead["rates"], dead["steps"]):
        np.testing.assert_allclose(row, tensor_util.make_ndarray(expected[step].tensor), atol=1e-4)
    status, steps = get_json(client, "steps", run="run", kind="dead", layer="relu1")
    assert [s["step"] for s in steps["steps"]] == [0, 1, 2, 3, 4, 5]
    status, summary = get_json(client, "dead_summary", run="run")
    assert summary["layers"]["relu1"]["step"] == 5
