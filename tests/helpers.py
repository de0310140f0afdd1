"""Helpers the tests share: TensorBoard's real WSGI app over a log directory, and JSON requests to it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from werkzeug.test import Client

from tb_cnnviz.thinning import DEFAULT_KEEP

#: The demo, shortened for tests: still more than 10 logged steps, so TensorBoard's sampling shows.
QUICK_DEMO = {"steps": 240, "log_every": 20, "dead_every": 20}


def tensorboard_client(logdir: Path, load_fast: str, extra_flags: tuple[str, ...] = ()) -> Client:
    """TensorBoard's own WSGI app over ``logdir`` (plugins found through entry points, as `tensorboard` does),
    with the Python loader (``load_fast="false"``) or the Rust data server (``"true"``)."""
    from tensorboard import default, program
    from tensorboard.backend import application

    tb = program.TensorBoard(plugins=default.get_plugins())  # first-party and entry-point plugins
    # The Python loader reads every file before the first request (a loaded machine could leave a run unread
    # while the plugin's answers look settled); the Rust data server has no such mode: wait_until_loaded.
    once = not any(flag.startswith("--reload_interval") for flag in extra_flags)
    blocking = ["--reload_task=blocking"] if load_fast == "false" and once else []
    tb.configure(argv=["tensorboard", f"--logdir={logdir}", f"--load_fast={load_fast}", "--reload_interval=0", *blocking,
                       *extra_flags])
    provider, multiplexer = tb._make_data_provider()
    app = application.TensorBoardWSGIApp(tb.flags, tb.plugin_loaders, provider, tb.assets_zip_provider, multiplexer)
    client = Client(app)
    client.tensorboard = tb  # keep the data server's ingester alive as long as the client
    client.provider = provider
    wait_until_loaded(lambda route, params: client.get(f"/data/plugin/cnnviz/{route}", query_string=params).data)
    return client


def get_json(client: Client, route: str, **params: object) -> tuple[int, dict]:
    reply = client.get(f"/data/plugin/cnnviz/{route}", query_string=params)
    assert reply.headers["Content-Type"].startswith("application/json"), reply.headers["Content-Type"]
    return reply.status_code, json.loads(reply.data)


def wait_until_loaded(get: Callable[[str, dict], bytes], timeout_s: float = 60) -> None:
    """TensorBoard loads event files in the background and answers meanwhile: wait until what the plugin sees
    (runs, layers, latest dead-filter steps) stops changing. ``get(route, params)`` returns a plugin route's body."""
    deadline = time.monotonic() + timeout_s
    previous = None
    while time.monotonic() < deadline:
        seen = get("runs", {})
        runs = json.loads(seen).get("runs", []) if seen.startswith(b"{") else []
        for run in runs:
            seen += get("dead_summary", {"run": run["run"]})
        if runs and seen == previous:
            return
        previous = seen
        time.sleep(0.5)


def fetch(url: str, route: str, params: dict) -> bytes:
    """The body of a plugin route of a running `tensorboard` at ``url``; empty if it does not answer."""
    query = urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(f"{url}/data/plugin/cnnviz/{route}?{query}", timeout=10) as reply:
            return reply.read()
    except OSError:
        return b""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def tensorboard_process(logdir: Path, ready: bytes, extra_flags: tuple[str, ...] = ()) -> Iterator[str]:
    """A real `tensorboard --logdir` process; yields its URL (with its ``--path_prefix``) once ``/runs`` lists
    ``ready`` and what the plugin sees has stopped changing. Stopped on exit."""
    port = free_port()
    tensorboard = Path(sys.executable).with_name("tensorboard")
    # the plugin and frontend of this checkout, not those an editable install of another checkout points at
    checkout = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(filter(None, [checkout, os.environ.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [str(tensorboard), "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port), *extra_flags],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=checkout,
        env={**os.environ, "PYTHONPATH": path},
    )
    prefix = next((flag.split("=", 1)[1] for flag in extra_flags if flag.startswith("--path_prefix=")), "")
    url = f"http://127.0.0.1:{port}{prefix.rstrip('/')}"
    try:
        deadline = time.monotonic() + 60
        while ready not in fetch(url, "runs", {}):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("tensorboard did not start: " + process.stderr.read1().decode())
            time.sleep(0.3)
        wait_until_loaded(lambda route, params: fetch(url, route, params))
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        process.stderr.close()


def model_state(model):
    """What a method must leave as it found: hooks, modes, requires_grad, .grad objects, buffers, RNG."""
    return {
        "hooks": sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules()),
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [p.grad for p in model.parameters()],
        "buffers": [b.clone() for b in model.buffers()],
        "rng": torch.get_rng_state(),
    }


def assert_same_state(before, after):
    assert after["hooks"] == before["hooks"] == 0
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    assert all(a is b for a, b in zip(after["grads"], before["grads"]))
    for a, b in zip(after["buffers"], before["buffers"]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert torch.equal(after["rng"], before["rng"])


def assert_same_training(net_a, optimizer_a, net_b, optimizer_b):
    """Two training runs ended bit for bit alike: every weight and buffer, every optimizer state."""
    for a, b in zip(net_a.state_dict().values(), net_b.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(optimizer_a.state_dict()["state"].values(), optimizer_b.state_dict()["state"].values()):
        for key in a:
            assert torch.equal(torch.as_tensor(a[key]), torch.as_tensor(b[key]))


def naive_occlusion(model, x, target, window, stride, fill):
    """Occlusion the slow, obvious way: one occluded copy, one forward at a time."""
    nh, nw = (x.shape[2] - window) // stride + 1, (x.shape[3] - window) // stride + 1
    result = torch.empty(len(x), nh, nw)
    with torch.no_grad():
        for n in range(len(x)):
            for i in range(nh):
                for j in range(nw):
                    occluded = x[n : n + 1].clone()
                    occluded[:, :, i * stride : i * stride + window, j * stride : j * stride + window] = fill
                    result[n, i, j] = model(occluded).softmax(dim=1)[0, target[n]]
    return result


def whole_records(path: Path) -> list:
    """Every Event of an event file, checking what TensorBoard's loaders forgive: each record's length and
    data checksums, and that the file ends exactly after its last record (nothing half written)."""
    import struct

    from tensorboard.compat.proto import event_pb2
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    data = Path(path).read_bytes()
    events, at = [], 0
    while at < len(data):
        assert at + 12 <= len(data), f"{path}: a record header cut short at byte {at} of {len(data)}"
        header = data[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[at + 8:at + 12])[0] == masked_crc32c(header), f"{path}: bad header at {at}"
        end = at + 12 + length + 4
        assert end <= len(data), f"{path}: a record of {length} bytes cut short at byte {len(data)}"
        body = data[at + 12:at + 12 + length]
        assert struct.unpack("<I", data[end - 4:end])[0] == masked_crc32c(body), f"{path}: bad data checksum at {at}"
        events.append(event_pb2.Event.FromString(body))
        at = end
    return events


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def can_measure_peak_memory() -> bool:
    """Linux lets a process reset its peak resident memory (VmHWM) by writing 5 to /proc/self/clear_refs."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_bytes("VmHWM") > 0
    except OSError:
        return False


def peak_memory_growth(action: Callable[[], object], repeat: int = 3) -> int:
    """Bytes by which the process's peak resident memory rose above its resident memory before ``action()``:
    what the call needed at its worst (large tensors are mapped and returned to the system as they are freed).
    The kernel samples the peak lazily and the allocator's state drifts, so the least of ``repeat`` runs counts:
    a temporary the call really makes shows in every run."""
    import gc

    growths = []
    for _ in range(repeat):
        gc.collect()
        Path("/proc/self/clear_refs").write_text("5")
        before = _status_bytes("VmRSS")
        action()
        growths.append(max(0, _status_bytes("VmHWM") - before))
    return min(growths)


def health_events(logdir: Path) -> tuple[dict, dict]:
    """What the health flushes wrote, read back by TensorBoard's own event reader: ({layer: (PluginContent,
    [(step, rates as numpy)])}, {scalar tag: [(step, value)]})."""
    from tensorboard.backend.event_processing import event_accumulator

    from tb_cnnviz import metadata

    acc = event_accumulator.EventAccumulator(str(logdir), size_guidance={event_accumulator.TENSORS: 0,
                                                                          event_accumulator.SCALARS: 0})
    acc.Reload()
    dead = {}
    for tag in acc.Tags()["tensors"]:
        content = metadata.parse_plugin_content(acc.SummaryMetadata(tag).plugin_data.content)
        if content is not None and content.kind == metadata.DEAD:
            from tensorboard.util import tensor_util

            dead[content.layer] = (content, [(e.step, tensor_util.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)])
    scalars = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    return dead, scalars


def distribution_events(logdir: Path) -> dict[str, list[tuple[int, np.ndarray]]]:
    """The Distribution view's records (value counts and bin edges, (2, slots)) per layer, read back by
    TensorBoard's own event reader: {layer: [(step, array)]}."""
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    from tb_cnnviz import metadata

    acc = event_accumulator.EventAccumulator(str(logdir), size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    found = {}
    for tag in acc.Tags()["tensors"]:
        content = metadata.parse_plugin_content(acc.SummaryMetadata(tag).plugin_data.content)
        if content is not None and content.kind == "distribution":
            found[content.layer] = [(e.step, tensor_util.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]
    return found


def reference_histogram(values: list[torch.Tensor]) -> np.ndarray:
    """numpy's histogram of every value of ``values``, on the float32 bin edges of the Distribution view, with
    -Inf, +Inf and NaN counted apart: the slots [-Inf, bins..., +Inf, NaN]."""
    from tb_cnnviz.methods.activations.histograms import symmetric_log_edges

    edges = symmetric_log_edges().float().double().numpy()
    flat = np.concatenate([t.double().numpy().ravel() for t in values])
    bins, _ = np.histogram(flat[np.isfinite(flat)], bins=edges)
    return np.concatenate([[np.sum(flat == -np.inf)], bins, [np.sum(flat == np.inf), np.sum(np.isnan(flat))]])


def replicate_steps(source_run: Path, target_run: Path, steps: list[int], keep_steps: int | None = DEFAULT_KEEP) -> None:
    """Write every summary of ``source_run``'s event files again at each of ``steps`` into ``target_run``: the
    bytes of ``len(steps)`` logging calls (a long run) without running the model that many times. Written
    through tb_cnnviz's own sink, so pictures are thinned (``keep_steps``) as a real run's would be."""
    from tensorboard.backend.event_processing import event_file_loader

    from tb_cnnviz.sink import SummarySink

    records = [_as_records(event.summary) for path in sorted(source_run.glob("events.out.tfevents.*"))
               for event in event_file_loader.EventFileLoader(str(path)).Load() if event.HasField("summary")]
    sink = SummarySink(str(target_run), keep_steps=keep_steps)
    for step in steps:
        for written in records:
            sink.write(written, step)
    sink.close()


def _as_records(summary) -> list:
    """One event's values as the records a view hands the sink (the unnamed model's)."""
    from tensorboard.util import tensor_util

    from tb_cnnviz import metadata
    from tb_cnnviz.summary import Pictures, PRCurve, Rates, Scalar

    records = []
    for value in summary.value:
        name = value.tag.split("/", 1)[1]
        if value.HasField("simple_value"):
            records.append(Scalar(name, value.simple_value))
        elif value.metadata.plugin_data.plugin_name == "scalars":  # the loader's form of a simple value
            records.append(Scalar(name, float(tensor_util.make_ndarray(value.tensor))))
        elif value.metadata.plugin_data.plugin_name == "pr_curves":
            rows = tensor_util.make_ndarray(value.tensor)
            records.append(PRCurve(name.removesuffix("/pr_curves"), list(rows), value.metadata.display_name))
        else:
            content = metadata.parse_plugin_content(value.metadata.plugin_data.content)
            if content.kind in metadata.TENSOR_KINDS:
                records.append(Rates(content.kind, content.layer, tensor_util.make_ndarray(value.tensor), content.order,
                                     content.threshold, content.health))
            else:
                blobs = list(value.tensor.string_val)
                meta = {k: v for k, v in json.loads(blobs[0]).items() if k not in ("kind", "layer", "series_index")}
                records.append(Pictures(content.kind, content.layer, meta, blobs[1:], content.order))
    return records


def clustered_codes(n: int, dimensions: int = 512, classes: int = 20, intrinsic: int = 8, seed: int = 0):
    """(n, dimensions) non-negative codes and (n,) labels: class c's codes are centre_c + B_c z (B_c an
    orthonormal (dimensions, intrinsic) basis of its own, z ~ N(0, 3^2)) plus a little isotropic noise, then
    a ReLU. Each class is a low-dimensional cloud of its own: neighbours within a class follow z."""
    generator = np.random.default_rng(seed)
    labels = generator.integers(classes, size=n)
    centres = generator.normal(size=(classes, dimensions))
    bases = np.linalg.qr(generator.normal(size=(classes, dimensions, intrinsic)))[0]
    latent = generator.normal(size=(n, intrinsic)) * 3.0
    codes = centres[labels] + np.einsum("nk,ndk->nd", latent, bases[labels]) + generator.normal(size=(n, dimensions)) * 0.05
    return np.maximum(codes, 0).astype(np.float32), labels
