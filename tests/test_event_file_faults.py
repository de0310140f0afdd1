"""Damaged and growing event files: the plugin keeps serving every complete record, through both loaders.

Each test logs real records with CNNViz, then damages the file the way a crash, a bad disk or a live writer
would: cut mid-record, one flipped byte in a record's data (its CRC no longer matches), or bytes appended while
TensorBoard is reading. What should show is worked out from the raw bytes here (the TFRecord framing and the
Event protobuf), not by the plugin.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from tensorboard.compat.proto import event_pb2
from werkzeug.test import Client

from tb_cnnviz import CNNViz, metadata
from tb_cnnviz.thinning import base_tag

from helpers import get_json, tensorboard_client

LOADERS = pytest.mark.parametrize("load_fast", ["false", "true"], ids=["python_loader", "rust_data_server"])
STEPS = [0, 10, 20, 30]
LAYER = "conv1"
TAG = metadata.tag(metadata.FILTERS, LAYER)


@dataclass(frozen=True)
class Record:
    """One TFRecord of an event file: its byte span, and the step and tags of the Event inside."""

    start: int
    end: int
    step: int
    tags: frozenset[str]

    @property
    def data_start(self) -> int:
        return self.start + 12  # uint64 length, uint32 masked CRC of the length


def records(data: bytes) -> list[Record]:
    """Split TFRecord framing by hand: length, CRC(length), data, CRC(data)."""
    found, offset = [], 0
    while offset < len(data):
        (length,) = struct.unpack_from("<Q", data, offset)
        event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
        end = offset + 12 + length + 4
        # A picture series is written to slot tags ("<tag>@<slot>", see tb_cnnviz.thinning): one series here.
        found.append(Record(offset, end, event.step, frozenset(base_tag(v.tag) for v in event.summary.value)))
        offset = end
    return found


def logged_run(directory: Path, tiny_net: torch.nn.Module) -> tuple[Path, bytes, list[Record]]:
    """One run's event file with the filters of both convs at every step of STEPS."""
    with CNNViz(tiny_net, str(directory), raise_errors=True) as viz:
        for step in STEPS:
            viz.log_filters(step)
    (path,) = directory.glob("events.out.tfevents.*")
    data = path.read_bytes()
    return path, data, records(data)


def steps_of(tag: str, kept: list[Record]) -> list[int]:
    return [r.step for r in kept if tag in r.tags]


def served_steps(client: Client, run: str) -> list[int]:
    status, body = get_json(client, "steps", run=run, kind=metadata.FILTERS, layer=LAYER)
    assert status == 200, body
    return [s["step"] for s in body["steps"]]


def assert_every_served_step_is_readable(client: Client, run: str, steps: list[int]) -> None:
    for step in steps:
        status, body = get_json(client, "sample", run=run, kind=metadata.FILTERS, layer=LAYER, step=step)
        assert status == 200 and body["images"] == 1, body
        reply = client.get("/data/plugin/cnnviz/blob", query_string={"run": run, "key": body["blobs"][0]})
        assert reply.status_code == 200 and reply.data.startswith(b"\x89PNG")


@LOADERS
def test_a_file_cut_mid_record_serves_every_complete_record(tmp_path, tiny_net, load_fast):
    path, data, framed = logged_run(tmp_path / "cut", tiny_net)
    last_with_tag = max(i for i, r in enumerate(framed) if TAG in r.tags)
    cut = framed[last_with_tag].data_start + 40  # inside the data of the last step's record
    path.write_bytes(data[:cut])
    expected = steps_of(TAG, framed[:last_with_tag])
    assert expected == STEPS[:-1]

    client = tensorboard_client(tmp_path, load_fast)
    assert served_steps(client, "cut") == expected
    assert_every_served_step_is_readable(client, "cut", expected)
    status, body = get_json(client, "sample", run="cut", kind=metadata.FILTERS, layer=LAYER, step=STEPS[-1])
    assert status == 404 and "no filters at step 30" in body["error"]


#: Where to flip a byte in the record of step 10: in its PNG's pixel data, or the first byte of its metadata JSON.
FLIPS = {"picture": (b"IEND", -6), "metadata": (b'{"kind"', 0)}


@LOADERS
@pytest.mark.parametrize("flipped", sorted(FLIPS))
def test_a_record_with_a_bad_crc(tmp_path, tiny_net, load_fast, flipped):
    path, data, framed = logged_run(tmp_path / "flipped", tiny_net)
    bad = [i for i, r in enumerate(framed) if TAG in r.tags][1]  # the record of step 10
    marker, shift = FLIPS[flipped]
    at = data.index(marker, framed[bad].data_start, framed[bad].end) + shift
    damaged = bytearray(data)
    damaged[at] ^= 0xFF  # the protobuf still parses; the record's data CRC no longer matches
    path.write_bytes(bytes(damaged))

    client = tensorboard_client(tmp_path, load_fast)
    shown = served_steps(client, "flipped")
    if load_fast == "false":
        # TensorBoard's Python loader treats a CRC mismatch like a record still being written: it stops at the
        # bad record and retries it at every reload, so nothing after it in that file ever shows.
        assert shown == steps_of(TAG, framed[:bad]) == [0]
        assert_every_served_step_is_readable(client, "flipped", shown)
        return
    # The Rust data server (0.7) keeps a record whose data CRC fails (it is not dropped) and reads on.
    assert shown == steps_of(TAG, framed) == STEPS
    assert_every_served_step_is_readable(client, "flipped", [0, 20, 30])
    status, body = get_json(client, "sample", run="flipped", kind=metadata.FILTERS, layer=LAYER, step=10)
    if flipped == "metadata":  # the damaged JSON is a clear 404, not a 500
        assert status == 404 and "unreadable" in body["error"]
    else:  # the picture is served as stored, with the flipped byte
        assert status == 200
        served = client.get("/data/plugin/cnnviz/blob", query_string={"run": "flipped", "key": body["blobs"][0]}).data
        assert served in bytes(damaged)[framed[bad].data_start : framed[bad].end] and served not in data


@LOADERS
def test_steps_appended_while_tensorboard_reads_appear_on_reload(tmp_path, tiny_net, load_fast):
    scratch, served = tmp_path / "scratch", tmp_path / "logs" / "live"
    _, data, framed = logged_run(scratch, tiny_net)
    served.mkdir(parents=True)
    path = served / "events.out.tfevents.1.live"
    first_of_step_20 = next(i for i, r in enumerate(framed) if r.step == 20)
    split = framed[first_of_step_20].data_start + 10  # the writer is part-way through a record
    path.write_bytes(data[:split])

    client = tensorboard_client(tmp_path / "logs", load_fast, ("--reload_interval=1",))
    assert served_steps(client, "live") == [0, 10]
    with path.open("ab") as file:  # the rest of that record, then more records, in pieces, as a writer would
        for start in range(split, len(data), 997):
            file.write(data[start : start + 997])
            file.flush()
    deadline = time.monotonic() + 60
    while (shown := served_steps(client, "live")) != STEPS and time.monotonic() < deadline:
        time.sleep(0.5)
    assert shown == STEPS
    assert_every_served_step_is_readable(client, "live", STEPS)
