"""Log directories on object storage (``s3://``), against a real S3-compatible server on 127.0.0.1.

The server is moto in server mode, started by the tests; TensorBoard's own S3 file system (boto3) talks to it
through ``S3_ENDPOINT``, on the writing side (the user's ``SummaryWriter``) and in a stock ``tensorboard``
process. moto and boto3 are test extras (``pip install -e '.[test]'``): imported plainly, so a missing or broken
install fails instead of skipping.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import boto3  # test extras (setup.py): a missing or broken install fails here, it is not skipped
import moto.server as moto_server
import numpy as np
import pytest
import torch
from tensorboard.compat.tensorflow_stub.io import gfile
from tensorboard.util import tensor_util
from torch.utils.tensorboard import SummaryWriter

from helpers import fetch, free_port, tensorboard_process, whole_records
from tb_cnnviz import CNNViz, LoggingFailedWarning, StorageFailedWarning, metadata, sink
from tb_cnnviz.thinning import base_tag

BUCKET = "cnnviz-runs"


class S3Server:
    """moto's S3 on a free port of 127.0.0.1; :meth:`stop` and :meth:`start` make an outage (the stored
    objects survive it: moto keeps them in this process)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = None

    def start(self) -> None:
        self._server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint)

    def event_files(self, prefix: str, into: Path) -> dict[str, list]:
        """Object name -> its events, each record checked whole (downloaded to ``into``)."""
        client, found = self.client(), {}
        for entry in client.list_objects(Bucket=BUCKET, Prefix=prefix).get("Contents", []):
            name = entry["Key"].rsplit("/", 1)[-1]
            if name.startswith("events.out.tfevents."):
                path = into / name
                path.write_bytes(client.get_object(Bucket=BUCKET, Key=entry["Key"])["Body"].read())
                found[name] = whole_records(path)
        return found


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    """The server, the environment TensorBoard's S3 file system and boto3 read, and an empty bucket."""
    server = S3Server()
    server.start()
    environment = {
        "S3_ENDPOINT": server.endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_MAX_ATTEMPTS": "1",  # an outage fails at once instead of after boto3's retries
    }
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    # TensorBoard's S3 file system reads S3_ENDPOINT when it is made, at import: make one that sees it (a user
    # sets the variable before starting Python).
    previous = gfile._REGISTERED_FILESYSTEMS.get("s3")
    gfile.register_filesystem("s3", gfile.S3FileSystem())
    server.client().create_bucket(Bucket=BUCKET)
    try:
        yield server
    finally:
        server.stop()
        if previous is not None:
            gfile.register_filesystem("s3", previous)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _train_and_log(viz: CNNViz, net: torch.nn.Module, steps: range) -> None:
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(0)
    for step in steps:
        loss = net(torch.rand(4, 1, 12, 12, generator=generator)).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        viz.step(step)
        viz.log_activations(step)


def _failures(caught: list[warnings.WarningMessage]) -> list[type]:
    return [w.category for w in caught if issubclass(w.category, (StorageFailedWarning, LoggingFailedWarning))]


def _steps(events: list, tag: str) -> list[int]:
    return [e.step for e in events for v in e.summary.value if base_tag(v.tag) == tag]  # a picture's slot tags too


ACTIVATIONS = metadata.tag(metadata.ACTIVATIONS, "relu1")


@pytest.mark.slow
def test_the_users_writer_on_s3_fills_the_cnnviz_tab_of_stock_tensorboard(s3, tiny_net, tmp_path):
    writer = SummaryWriter(f"s3://{BUCKET}/runs/exp1")
    viz = CNNViz(tiny_net, writer, probe_images=torch.rand(2, 1, 12, 12, generator=torch.Generator().manual_seed(1)))
    viz.watch_dead_filters(every=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _train_and_log(viz, tiny_net, range(3))
        viz.log_filters(2)
        writer.add_scalar("loss", 0.5, 2)
        viz.close()
        writer.close()
    assert _failures(caught) == []
    (events,) = s3.event_files("runs/exp1/", tmp_path).values()  # one event file: the user's
    assert _steps(events, ACTIVATIONS) == [0, 1, 2]
    written = {e.step: v for e in events for v in e.summary.value}
    with tensorboard_process(f"s3://{BUCKET}/runs", b"exp1", ("--reload_interval", "1")) as url:
        with urllib.request.urlopen(f"{url}/data/plugins_listing", timeout=10) as reply:
            listing = json.loads(reply.read())["cnnviz"]
        assert listing["enabled"] and listing["tab_name"] == "CNNVIZ"
        (run,) = json.loads(fetch(url, "runs", {}))["runs"]
        assert run["run"] == "exp1" and "relu1" in run["activations"] and run["filters"] == ["conv1", "conv2"]
        steps = json.loads(fetch(url, "steps", {"run": "exp1", "kind": "activations", "layer": "relu1"}))["steps"]
        assert [s["step"] for s in steps] == [0, 1, 2]
        picture = fetch(url, "image", {"run": "exp1", "kind": "activations", "layer": "relu1", "step": 2, "index": 1})
        record = next(v for e in events if e.step == 2 for v in e.summary.value if base_tag(v.tag) == ACTIVATIONS)
        assert picture == record.tensor.string_val[2]  # blob 0 is the JSON, then one PNG per probe image
        dead = json.loads(fetch(url, "dead", {"run": "exp1", "layer": "relu2"}))
        assert dead["steps"] == [0, 1, 2]
        sent = tensor_util.make_ndarray(next(v for e in events if e.step == 2 for v in e.summary.value
                                             if v.tag == metadata.tag(metadata.DEAD, "relu2")).tensor)
        np.testing.assert_allclose(dead["rates"][-1], sent, atol=1e-4)
    assert written  # the records compared above came from the store, not from this process


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # TensorBoard's writer thread
@pytest.mark.parametrize("flush_secs", [120, 2], ids=["writer_thread_waits", "writer_thread_flushes_and_dies"])
def test_an_unreachable_store_warns_once_training_goes_on_and_logging_resumes(
    s3, tiny_net, tmp_path, monkeypatch, flush_secs
):
    prefix = f"outage{flush_secs}/"  # not under runs/: the other test's tensorboard walks only that
    writer = SummaryWriter(f"s3://{BUCKET}/{prefix}", flush_secs=flush_secs)
    viz = CNNViz(tiny_net, writer, probe_images=torch.rand(2, 1, 12, 12))
    _train_and_log(viz, tiny_net, range(0, 2))
    viz.flush()
    s3.stop()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if flush_secs < 120:
                time.sleep(flush_secs + 0.2)  # the writer thread's own flush falls in the outage: the thread dies
            _train_and_log(viz, tiny_net, range(2, 4))  # the loop goes on through the outage
            viz.flush()
            monkeypatch.setattr(sink, "REOPEN_EVERY_S", 0.0)  # retry at once instead of in 30 s
            _train_and_log(viz, tiny_net, range(4, 5))
    finally:
        s3.start()
    assert _failures(caught) == [StorageFailedWarning]
    said = str(next(w.message for w in caught if w.category is StorageFailedWarning))
    if flush_secs == 120:  # the writer thread lives and holds every record: the warning must not say they are lost
        assert "nothing is lost" in said and "dropped" not in said
    else:
        assert "records are dropped" in said
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _train_and_log(viz, tiny_net, range(5, 7))
        viz.close()
        writer.add_scalar("loss", 1.0, 7)  # the user's writer works again too
        writer.close()
    assert _failures(caught) == []
    files = s3.event_files(prefix, tmp_path)
    steps = sorted(s for events in files.values() for s in _steps(events, ACTIVATIONS))
    assert {0, 1, 5, 6} <= set(steps) and len(steps) == len(set(steps))
    if flush_secs == 120:  # the writer kept every record in its buffer: the next upload carries the outage's too
        assert len(files) == 1 and steps == list(range(7))
    assert any(v.tag == "loss" for events in files.values() for e in events for v in e.summary.value)
