"""DDP: two processes on gloo write what one process writes over the same data, block nobody, corrupt nothing.

One spawn of two ranks does every check (spawning costs seconds): the dead-filter series and top-k lists read
back from rank 0's event files equal those of one process over the whole data; rank 1 finishes while rank 0
still logs views alone; rank 0 then dies in the middle of a logging call and its event file still parses whole.
Slow-marked: two spawned interpreters importing torch take ~20 s on a loaded 2-core machine.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from helpers import whole_records

from tb_cnnviz import CNNViz, metadata
from tb_cnnviz.thinning import base_tag

WORLD = 2
STEPS = 4  # training steps; each step sees WORLD batches (one per rank under DDP)
EVERY = 2  # dead-filter flush every 2 steps: 2 windows
TOP_LAYER = "2"  # the conv before the ReLU: continuous values, no ties to break
JOIN_TIMEOUT_S = 120  # a hang fails the test instead of the suite

pytestmark = pytest.mark.slow


def _setup() -> tuple[nn.Module, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], torch.Tensor]:
    """A tiny net whose channels die at different rates, 8 batches carrying data set indices, probe images."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 5, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3))
    with torch.no_grad():
        net[0].bias[:3] = torch.tensor([-10.0, -1.2, -0.6])  # always dead, sometimes dead, rarely dead
        net[2].bias[0] = -10.0
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(32, 3, 6, 6, generator=generator) * torch.rand(32, 1, 1, 1, generator=generator) * 2
    labels = torch.randint(0, 3, (32,), generator=generator)
    batches = [(images[i:i + 4], labels[i:i + 4], torch.arange(i, i + 4)) for i in range(0, 32, 4)]
    return net, batches, images[:2]


def _train(model: nn.Module, viz: CNNViz, batches: list, rank: int, world: int) -> None:
    """At step s, rank r sees batch WORLD*s + r; one process (world 1) sees all WORLD of them: same windows."""
    with torch.no_grad():
        for step in range(STEPS):
            for r in range(rank, WORLD, world):
                model(batches[WORLD * step + r][0])
            viz.step(step)


def _log(viz: CNNViz, batches: list, rank: int, world: int) -> None:
    """The collective views over this rank's shard."""
    viz.log_top_activations(batches[rank::world], TOP_LAYER, step=10, k=5, directions=2, whole_size=8)
    viz.log_top_activations(batches[rank::world], TOP_LAYER, step=10, k=5, whole_size=8, rank="relevance")


def _wait_for(path: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path.name} never appeared")
        time.sleep(0.05)


def _rank(rank: int, init: str, logdir: str, marks: str) -> None:
    from torch.nn.parallel import DistributedDataParallel

    marks_dir = Path(marks)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=WORLD, timeout=timedelta(seconds=30))
    net, batches, probe = _setup()
    model = DistributedDataParallel(net)  # hooks go on the inner module, forwards through the wrapper
    viz = CNNViz(net, logdir if rank == 0 else None, probe_images=probe, raise_errors=True)
    viz.watch_dead_filters(every=EVERY)
    auto = viz.autolog(budget=0.05, data=batches, background=True)  # rank 0 alone schedules and logs
    workers = [thread.name for thread in threading.enumerate() if thread.name == "tb_cnnviz-autolog"]
    _train(model, viz, batches, rank, WORLD)
    _log(viz, batches, rank, WORLD)
    if rank == 1:
        # Collective-free work only, then finish: rank 0's views below must not wait for this rank.
        skipped = [viz.log_activations(20), viz.log_filters(20)]
        with torch.no_grad():
            net(batches[0][0])
        viz.close()
        (marks_dir / "rank1.json").write_text(json.dumps({"skipped": skipped, "writes": viz.writes,
                                                         "autolog": auto is not None, "workers": workers}))
        # As a training script ends: without this, gloo's threads can outlive the interpreter's shutdown once
        # rank 0 is gone, and the C++ runtime aborts the process ("terminate called without an active exception").
        dist.destroy_process_group()
        return
    _wait_for(marks_dir / "rank1.json")
    written = [viz.log_activations(20), viz.log_filters(20)]
    for step in range(21, 25):  # records queued in the writer thread when the process dies
        viz.log_activations(step)
    (marks_dir / "rank0.json").write_text(json.dumps({"written": written, "workers": workers,
                                                     "left_out": sorted(auto.report()["skipped"])}))

    def failing_data():
        yield batches[0]
        raise RuntimeError("rank 0 fails in the middle of a logging call")

    with torch.no_grad():
        viz.log_top_activations(failing_data(), TOP_LAYER, step=30)  # raises (raise_errors=True): the process dies


def _records(logdir: Path) -> list:
    events = []
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        events.extend(whole_records(path))
    return events


def _values(events: list, kind: str) -> dict[tuple[str, int], object]:
    """(tag, step) -> the summary value of one kind's tags (a picture series' slot tags as one)."""
    prefix = metadata.tag(kind, "")
    return {(base_tag(v.tag), e.step): v for e in events for v in e.summary.value if v.tag.startswith(prefix)}


def _dead_rates(events: list) -> dict[tuple[str, int], list[float]]:
    from tensorboard.util import tensor_util

    return {key: tensor_util.make_ndarray(v.tensor).tolist() for key, v in _values(events, metadata.DEAD).items()}


def _top(events: list) -> dict[tuple[str, int], tuple[dict, list[bytes]]]:
    return {key: (json.loads(v.tensor.string_val[0]), list(v.tensor.string_val[1:]))
            for key, v in _values(events, metadata.TOP).items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One process over the whole data, then two DDP ranks over halves of it."""
    root = tmp_path_factory.mktemp("ddp")
    single, ddp, marks = root / "single", root / "ddp", root / "marks"
    marks.mkdir()
    net, batches, probe = _setup()
    with CNNViz(net, single, probe_images=probe, raise_errors=True) as viz:
        viz.watch_dead_filters(every=EVERY)
        _train(net, viz, batches, 0, 1)
        _log(viz, batches, 0, 1)

    context = mp.get_context("spawn")
    init = f"file://{root / 'rendezvous'}"
    processes = [context.Process(target=_rank, args=(rank, init, str(ddp), str(marks))) for rank in range(WORLD)]
    for process in processes:
        process.start()
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    for process in processes:
        process.join(max(1.0, deadline - time.monotonic()))
    hung = [rank for rank, process in enumerate(processes) if process.is_alive()]
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join()
    exitcodes = [process.exitcode for process in processes]
    for process in processes:
        process.close()
    return {"single": single, "ddp": ddp, "marks": marks, "hung": hung, "exitcodes": exitcodes}


def test_no_rank_hangs_rank_1_finishes_alone_and_rank_0_dies_as_staged(runs):
    assert runs["hung"] == []
    assert runs["exitcodes"][1] == 0
    assert runs["exitcodes"][0] not in (0, None)  # the staged failure
    rank1 = json.loads((runs["marks"] / "rank1.json").read_text())
    assert rank1 == {"skipped": [None, None], "writes": False, "autolog": False, "workers": []}
    rank0 = json.loads((runs["marks"] / "rank0.json").read_text())  # views logged after rank 1 had finished
    assert rank0["written"] == [["0", "1", "2", "3"], ["0", "2"]]
    assert rank0["workers"] == ["tb_cnnviz-autolog"]  # autolog's worker runs on rank 0 only
    assert rank0["left_out"] == ["top_activations", "top_relevance"]  # collective: left to the user under DDP


def test_dead_fractions_over_two_ranks_equal_one_process_over_all_data(runs):
    single = _dead_rates(_records(runs["single"]))
    ddp = _dead_rates(_records(runs["ddp"]))
    assert sorted(single) == sorted(ddp) == sorted((metadata.tag(metadata.DEAD, layer), step)
                                                   for layer in ("1", "3") for step in (1, 3))
    assert ddp == single
    rates = [rate for series in single.values() for rate in series]
    assert 1.0 in rates and any(0 < rate < 1 for rate in rates)  # dead, partly dead: the sums matter


def test_top_k_over_two_ranks_equals_one_process_over_all_data(runs):
    single = _top(_records(runs["single"]))
    ddp = _top(_records(runs["ddp"]))
    names = {(metadata.tag(metadata.TOP, name), 10)
             for name in (TOP_LAYER, f"{TOP_LAYER} (random directions)", f"{TOP_LAYER} (relevance)")}
    assert set(single) == set(ddp) == names
    for key in names:
        meta_single, sprites_single = single[key]
        meta_ddp, sprites_ddp = ddp[key]
        assert meta_ddp["units"] == meta_single["units"]
        assert sprites_ddp == sprites_single  # the merged patches and whole images, byte for byte
        images = {image for unit in meta_single["units"] for image in unit["images"]}
        shards = [set(range(0, 32, 8)), set(range(4, 32, 8))]  # the first image of each rank's batches
        if meta_single["rank"] == "relevance":  # fewer images (relevance > 0): any of each rank's batches
            shards = [{i for i in range(32) if i // 4 % WORLD == rank} for rank in range(WORLD)]
        assert images & shards[0] and images & shards[1]  # both ranks' shards won slots
    relevance = ddp[(metadata.tag(metadata.TOP, f"{TOP_LAYER} (relevance)"), 10)][0]
    assert (relevance["rank"], relevance["target"]) == ("relevance", "label")  # the record says which
    assert all(len(unit["classes"]) == len(unit["images"]) for unit in relevance["units"])
    assert all(value > 0 for unit in relevance["units"] for value in unit["values"])  # 0 (off): left out


def test_a_rank_that_dies_mid_call_leaves_every_record_whole(runs):
    ddp = runs["ddp"]
    files = list(ddp.glob("events.out.tfevents.*"))
    assert len(files) == 1  # rank 1 wrote nothing
    events = _records(ddp)  # fails on a record cut short or with a bad checksum
    steps = {e.step for e in events for v in e.summary.value
             if base_tag(v.tag) == metadata.tag(metadata.ACTIVATIONS, "1")}
    assert steps == {20, 21, 22, 23, 24}  # also the records still queued when the exception ended the process
    assert not any(e.step == 30 for e in events)
