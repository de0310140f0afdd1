"""Storage that fails under a running writer: a log directory removed, a disk that fills up (a real tmpfs).

Training continues, one StorageFailedWarning is raised, what was written before stays readable (every record
whole), and logging resumes in a fresh event file once one can be opened.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch.utils.tensorboard import SummaryWriter

from helpers import whole_records

from tb_cnnviz import CNNViz, LoggingFailedWarning, StorageFailedWarning, metadata, sink
from tb_cnnviz.thinning import base_tag


def _train_and_log(viz: CNNViz, net: torch.nn.Module, steps: range) -> None:
    """A real training loop (SGD on random data) logging every step, as a user's would."""
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(0)
    for step in steps:
        x = torch.rand(4, 1, 16, 16, generator=generator)
        loss = net(x).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        viz.step(step)
        viz.log_activations(step)
        viz.log_filters(step)


def _failure_warnings(caught: list[warnings.WarningMessage]) -> list[type]:
    return [w.category for w in caught if issubclass(w.category, (StorageFailedWarning, LoggingFailedWarning))]


def _activation_steps(logdir: Path) -> dict[str, set[int]]:
    """Event file name -> the steps of its activation records, read strictly (every record whole)."""
    tag = metadata.tag(metadata.ACTIVATIONS, "relu1")
    return {path.name: {e.step for e in whole_records(path) for v in e.summary.value if base_tag(v.tag) == tag}
            for path in sorted(logdir.glob("events.out.tfevents.*"))}


@pytest.mark.parametrize("own_writer", [False, True], ids=["logdir", "user_writer"])
def test_a_log_directory_removed_under_the_writer_is_made_again_and_nothing_after_is_lost(
    tiny_net: torch.nn.Module, tmp_path: Path, own_writer: bool
) -> None:
    logdir = tmp_path / "run"
    writer = SummaryWriter(str(logdir)) if own_writer else None
    viz = CNNViz(tiny_net, writer or logdir, probe_images=torch.rand(2, 1, 16, 16))
    viz.watch_dead_filters(every=2)
    _train_and_log(viz, tiny_net, range(0, 3))
    viz.flush()
    shutil.rmtree(logdir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _train_and_log(viz, tiny_net, range(3, 8))
        viz.close()
        if writer is not None:
            writer.add_scalar("loss", 1.0, 8)  # the user's writer works again too
            writer.close()
    assert _failure_warnings(caught) == [StorageFailedWarning]
    files = _activation_steps(logdir)
    assert len(files) == 1 and set().union(*files.values()) == set(range(3, 8))  # every step after the loss
    dead_steps = {e.step for path in logdir.glob("events.*") for e in whole_records(path)
                  for v in e.summary.value if v.tag == metadata.tag(metadata.DEAD, "relu1")}
    assert dead_steps == {3, 5, 7}  # flushes after the loss (the last at close)


MOUNT_BYTES = 512 * 1024


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 512 KiB tmpfs (needs root and mount permission; skipped otherwise)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={MOUNT_BYTES}", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(path: Path, leave: int) -> None:
    """Fill the file system of ``path`` up to ``leave`` free bytes."""
    with open(path, "wb") as filler:
        while os.statvfs(path).f_bavail * os.statvfs(path).f_frsize > leave:
            try:
                filler.write(b"\0" * 4096)
                filler.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # TensorBoard's writer thread
def test_a_full_disk_warns_once_keeps_earlier_records_whole_and_resumes_when_freed(
    tiny_net: torch.nn.Module, tiny_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logdir = tiny_disk / "run"
    probe = torch.rand(4, 1, 48, 48, generator=torch.Generator().manual_seed(3))  # records of tens of KiB
    viz = CNNViz(tiny_net, logdir, probe_images=probe, max_size=48)
    viz.watch_dead_filters(every=2)
    _train_and_log(viz, tiny_net, range(0, 2))
    viz.flush()
    first = next(logdir.glob("events.*")).name
    _fill(tiny_disk / "filler", leave=8 * 1024)  # less than one record: the next one is cut short
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _train_and_log(viz, tiny_net, range(2, 8))  # the loop goes on; every step's records fail
        viz.flush()
    assert _failure_warnings(caught) == [StorageFailedWarning]
    assert viz._sink.dropped > 0
    assert _activation_steps(logdir)[first] >= {0, 1}  # written before: whole, readable

    (tiny_disk / "filler").unlink()
    monkeypatch.setattr(sink, "REOPEN_EVERY_S", 0.0)  # retry at once instead of in 30 s
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _train_and_log(viz, tiny_net, range(8, 10))
        viz.close()
    assert _failure_warnings(caught) == []
    steps = _activation_steps(logdir)
    assert len(steps) == 2 and steps[first] >= {0, 1}
    assert {8, 9} <= next(s for name, s in steps.items() if name != first)  # resumed in a fresh event file
