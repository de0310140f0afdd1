"""Even thinning of long runs (issue 16): the slot rule against what it promises, and a thinned run served by
the real TensorBoard (both loaders): the first and latest step and an even grid, every dead-filter flush,
``--samples_per_plugin`` honoured, the count of calls written for the tab's notice."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from helpers import get_json, tensorboard_client
from tb_cnnviz import CNNViz
from tb_cnnviz.thinning import LATEST, SeriesThinning


def held_after(calls: int, keep: int) -> list[int]:
    """The call indices TensorBoard holds after ``calls`` calls when it keeps the last write to each tag, by the
    rule as tb_cnnviz.thinning's docstring states it, simulated here without its code: calls on the grid of
    stride s go to a slot of their own; when no slot is free, s doubles, which frees the slots holding odd
    multiples of the old stride, and the due call is kept only if it is on the new grid; every other call goes
    to the latest tag."""
    written: dict[str, int] = {}  # tag -> the last call written to it: what TensorBoard holds
    grid: dict[int, int] = {}  # slot -> the call it keeps on the grid (free once off the grid)
    stride = 1
    for call in range(calls):
        tag = "latest"
        if call % stride == 0:
            free = [slot for slot in range(keep) if slot not in grid or grid[slot] % stride != 0]
            if not free:
                stride *= 2
                free = [slot for slot in range(keep) if grid[slot] % stride != 0]
            if call % stride == 0:
                grid[min(free)] = call
                tag = f"slot {min(free)}"
        written[tag] = call
    return sorted(set(written.values()))


def thinning_holds(calls: int, keep: int) -> list[int]:
    """What SeriesThinning's slots leave TensorBoard holding after ``calls`` calls (the code under test)."""
    thinning, last = SeriesThinning(keep), {}
    for index in range(calls):
        last[thinning.place()] = index
    return sorted(set(last.values()))


def test_hand_worked_runs_hold_exactly_what_the_rule_says():
    # keep=3: 0, 1, 2 fill the slots; 3 doubles the stride to 2 (3 is off it: latest); 4 takes the slot of 1,
    # 6 doubles it to 4 (latest), 8 takes the slot of 2, 12 -> stride 8, 16 takes the slot of 4, 24 -> stride
    # 16, 32 takes the slot of 8, 48 -> stride 32 but 48 is off it: latest, overwritten by 49.
    assert held_after(50, 3) == thinning_holds(50, 3) == [0, 16, 32, 49]
    # keep=4: 4 doubles the stride to 2 and takes the slot of 1, 6 that of 3, 8 doubles it to 4 and takes the
    # slot of 2; 5, 7 and 9 went to the latest tag (3, no longer written, still shows until 6 replaces it).
    assert held_after(10, 4) == thinning_holds(10, 4) == [0, 4, 6, 8, 9]
    assert held_after(5, 4) == thinning_holds(5, 4) == [0, 2, 3, 4]


@pytest.mark.parametrize("keep", [2, 3, 4, 5, 6, 7, 16])
def test_the_slots_hold_exactly_what_the_rule_says_for_odd_and_even_keep(keep):
    for calls in range(1, 600):
        assert thinning_holds(calls, keep) == held_after(calls, keep), (calls, keep)


@pytest.mark.parametrize("keep", [2, 3, 4, 16])
def test_the_held_calls_are_the_first_the_latest_and_an_even_grid(keep):
    for calls in range(1, 400):
        held = thinning_holds(calls, keep)
        assert len(held) <= keep + 1, (calls, held)
        assert held[0] == 0 and held[-1] == calls - 1, (calls, held)
        # The grid: the smallest power of two whose multiples below `calls` fit in `keep` slots, all held.
        stride = 1
        while len(range(0, calls, stride)) > keep:
            stride *= 2
        assert set(range(0, calls, stride)) <= set(held), (calls, stride, held)
        assert stride <= max(1, 2 * calls // keep)  # the grid is as fine as the slots allow
        gaps = [b - a for a, b in zip(held, held[1:])]
        assert max(gaps, default=0) <= stride, (calls, held)


def test_a_run_within_the_slots_is_held_whole():
    assert thinning_holds(16, 16) == list(range(16))
    assert thinning_holds(17, 16) == [0, *range(2, 17)]  # the 17th call starts the grid of stride 2


def test_the_slot_rule_is_one_call_after_another_without_state_outside():
    first, second = SeriesThinning(4), SeriesThinning(4)
    assert [first.place() for _ in range(40)] == [second.place() for _ in range(40)]
    places = [first.place() for _ in range(40)]
    assert places.count(LATEST) > 30  # past the start, calls off the grid go to the latest slot


def test_bad_keep_steps_is_refused_with_what_is_right(tmp_path):
    with pytest.raises(ValueError, match="keep must be an int >= 2"):
        CNNViz(nn.Conv2d(1, 2, 3), str(tmp_path), keep_steps=1)


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(x))


CALLS, EVERY, KEEP = 40, 10, 4


@pytest.fixture(scope="module")
def thinned_logdir(tmp_path_factory) -> Path:
    """40 calls of log_activations (steps 0, 10, ..., 390) thinned to 4 slots, and a dead-filter flush at each."""
    logdir = tmp_path_factory.mktemp("thinned")
    torch.manual_seed(0)
    model = Small()
    with CNNViz(model, str(logdir / "run"), probe_images=torch.randn(2, 1, 8, 8), keep_steps=KEEP,
                raise_errors=True) as viz:
        viz.watch_dead_filters(every=EVERY)
        for step in range(CALLS * EVERY):
            model(torch.randn(2, 1, 8, 8))
            viz.step(step)
            if step % EVERY == 0:
                viz.log_activations(step)
    return logdir


@pytest.mark.parametrize("load_fast", ["false", "true"], ids=["python_loader", "rust_data_server"])
def test_tensorboard_holds_the_even_grid_and_every_flush(thinned_logdir, load_fast):
    client = tensorboard_client(thinned_logdir, load_fast)
    status, steps = get_json(client, "steps", run="run", kind="activations", layer="conv")
    assert status == 200, steps
    held = [entry["step"] for entry in steps["steps"]]
    assert held == [EVERY * index for index in held_after(CALLS, KEEP)], held
    assert steps["written"] == CALLS
    status, sample = get_json(client, "sample", run="run", kind="activations", layer="conv", step=held[-1])
    assert status == 200 and sample["meta"]["series_index"] == CALLS - 1
    status, dead = get_json(client, "dead", run="run", layer="relu")
    assert status == 200 and len(dead["steps"]) == CALLS  # every flush, none thinned


@pytest.mark.parametrize("load_fast", ["false", "true"], ids=["python_loader", "rust_data_server"])
def test_samples_per_plugin_zero_keeps_every_step(thinned_logdir, load_fast):
    client = tensorboard_client(thinned_logdir, load_fast, ("--samples_per_plugin=cnnviz=0",))
    status, steps = get_json(client, "steps", run="run", kind="activations", layer="conv")
    assert status == 200
    assert [entry["step"] for entry in steps["steps"]] == list(range(0, CALLS * EVERY, EVERY))
    assert steps["written"] == CALLS


def test_an_unthinned_run_says_every_call_is_held(tmp_path):
    with CNNViz(Small(), str(tmp_path / "run"), probe_images=torch.randn(1, 1, 8, 8), keep_steps=None,
                raise_errors=True) as viz:
        for step in range(5):
            viz.log_activations(step)
    client = tensorboard_client(tmp_path, "false")
    status, steps = get_json(client, "steps", run="run", kind="activations", layer="conv")
    assert status == 200 and [e["step"] for e in steps["steps"]] == [0, 1, 2, 3, 4] and steps["written"] == 5


@pytest.mark.parametrize("load_fast", ["false", "true"], ids=["python_loader", "rust_data_server"])
def test_a_resumed_thinned_run_shows_both_sessions_and_counts_their_calls(tmp_path, load_fast):
    """30 calls (steps 0..29) thinned to 4 slots, the process dies; resumed at step 20 with purge_step, 10 more
    calls (steps 20..29). Held: the first session's kept calls before step 20, then the second session's."""
    first_calls, resume, second_calls = 30, 20, 10
    for start, calls, purge in ((0, first_calls, None), (resume, second_calls, resume)):
        with CNNViz(Small(), str(tmp_path / "run"), probe_images=torch.randn(1, 1, 8, 8), keep_steps=KEEP,
                    purge_step=purge, raise_errors=True) as viz:
            for step in range(start, start + calls):
                viz.log_activations(step)
    before = [index for index in held_after(first_calls, KEEP) if index < resume]
    after = [resume + index for index in held_after(second_calls, KEEP)]
    client = tensorboard_client(tmp_path, load_fast)
    status, steps = get_json(client, "steps", run="run", kind="activations", layer="conv")
    assert status == 200 and [entry["step"] for entry in steps["steps"]] == before + after
    assert steps["written"] == (before[-1] + 1) + second_calls  # each session's last held call, added up
