"""autolog: every view on a schedule within a share of training time, inline or on a weight snapshot.

The schedule's arithmetic is checked with hand-worked numbers and a bound that holds for any costs; a real
run is timed from the outside (the time inside ``viz.step`` against the time outside it); the background mode
against a run without tb_cnnviz, bit for bit.
"""

import random
import threading
import time
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tb_cnnviz import CNNViz, LoggingFailedWarning
from tb_cnnviz.autolog import AutologWarning
from tb_cnnviz.schedule import Schedule

from helpers import assert_same_training, get_json, health_events, tensorboard_client


def test_a_cheap_view_comes_every_step_and_passes_its_unused_share_to_an_expensive_one():
    # budget 1/8 of 8 s of training a step: 1 s to share, 0.5 s each. "a" costs 0.25 s: logged every step,
    # it can hold at most 2 x 0.25 s, so from step 2 on it passes 0.25 s a step to "b", which then earns
    # 0.75 s a step. b (4 s): 0.5 at step 1, 1.25 at 2, then +0.75: 4.25 at step 6 (logged, 0.25 left),
    # 4.0 at step 11 (logged, 0 left), 3.75 at 16, 4.5 at 17 (logged).
    schedule = Schedule({"a": 0.25, "b": 4.0}, budget=0.125)
    logged = {"a": [], "b": []}
    for step in range(1, 21):
        schedule.earn(8.0)
        for name in schedule.due(step):
            schedule.charge(name, step, {"a": 0.25, "b": 4.0}[name])
            logged[name].append(step)
    assert logged == {"a": list(range(1, 21)), "b": [6, 11, 17]}
    assert schedule.spent == 20 * 0.25 + 3 * 4.0 <= 0.125 * 160


def test_min_every_spaces_a_cheap_view_and_an_unmeasured_view_waits_for_its_estimate():
    schedule = Schedule({"cheap": 0.01, "dear": 100.0}, budget=0.5, min_every=3)
    steps = []
    for step in range(10):
        schedule.earn(1.0)
        for name in schedule.due(step):
            schedule.charge(name, step, 0.01 if name == "cheap" else 100.0)
            steps.append((name, step))
    assert steps == [("cheap", 0), ("cheap", 3), ("cheap", 6), ("cheap", 9)]  # dear saved at most 5 s of 100
    assert schedule.never_logged() == {"dear": 100.0}


@pytest.mark.parametrize("seed", range(5))
def test_spending_never_runs_ahead_of_the_budget_by_more_than_the_misestimates(seed):
    rng = random.Random(seed)
    estimates = {f"v{i}": rng.uniform(0.01, 5.0) for i in range(6)}
    schedule = Schedule(estimates, budget=rng.choice([0.02, 0.05, 0.2]), min_every=rng.choice([1, 5]))
    overrun = 0.0
    for step in range(2000):
        schedule.earn(rng.uniform(0.05, 2.0))
        for name in schedule.due(step):
            actual = schedule.entries[name].cost * rng.uniform(0.5, 2.0)
            overrun += max(0.0, actual - schedule.entries[name].cost)
            schedule.charge(name, step, actual)
        assert schedule.spent <= schedule.budget * schedule.training + overrun + 1e-9
    assert all(entry.steps for entry in schedule.entries.values())  # 2000 steps is long enough for each


def test_a_budget_outside_zero_to_one_is_refused_with_an_example():
    for budget in (0, 1, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"budget must be a share of training time in \(0, 1\), e.g. 0.05"):
            Schedule({"a": 1.0}, budget)


# -- real runs ----------------------------------------------------------------------------------------------

def make_net():
    torch.manual_seed(8)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Dropout(0.3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    )


def batches(count, seed=9, size=16):
    data = torch.Generator().manual_seed(seed)
    return [(torch.rand(8, 3, size, size, generator=data), torch.randint(0, 4, (8,), generator=data)) for _ in range(count)]


def train(steps, logdir=None, background=False, budget=0.3, views=None, step_seconds=0.0, data=None):
    """A small training run; with ``logdir``, autolog on. Returns the net, its optimizer, the autolog and the
    seconds spent inside viz.step and outside it (timed here, not by tb_cnnviz)."""
    net = make_net()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    viz = auto = None
    inside = outside = 0.0
    if logdir is not None:
        probes = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(10))
        viz = CNNViz(net, logdir, probe_images=probes, probe_labels=[0, 1, 2])
        auto = viz.autolog(budget=budget, views=views, data=data, background=background, min_every=1)
    for step, (x, y) in enumerate(batches(steps)):
        begin = time.perf_counter()
        net.train()
        loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        time.sleep(step_seconds)  # a longer step, as a real model's
        middle = time.perf_counter()
        if viz is not None:
            viz.step(step)
        inside += time.perf_counter() - middle
        outside += middle - begin
    if viz is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AutologWarning)
            viz.close()
    return net, optimizer, auto, inside, outside


@pytest.mark.slow
def test_a_real_run_spends_at_most_the_budget_measured_from_outside(tmp_path):
    budget = 0.3
    _, _, auto, inside, outside = train(60, tmp_path, budget=budget, step_seconds=0.05, data=batches(4, seed=3),
                                        views=["activations", "filters", "correspondence", "top_activations"])
    report = auto.report()
    misestimates = sum(max(view["seconds"], default=0.0) for view in report["views"].values())
    assert inside <= budget * outside + misestimates  # the budget, plus at most one call of each view
    logged = [name for name, view in report["views"].items() if view["steps"]]
    assert {"activations", "filters", "correspondence"} <= set(logged)
    _, scalars = health_events(tmp_path)
    for name in logged:  # each call's cost is a scalar, at the step it was logged
        assert [step for step, _ in scalars[f"cnnviz/cost/{name}"]] == report["views"][name]["steps"]


def test_views_without_data_are_left_out_and_a_view_that_never_fits_is_said_once(tmp_path):
    with pytest.warns(AutologWarning, match=r"never logged .*class_models.* in \d+ s of training") as caught:
        net = make_net()
        viz = CNNViz(net, tmp_path, probe_images=torch.rand(2, 3, 16, 16))
        auto = viz.autolog(budget=0.01, views=["activations", "class_models"])
        for step, (x, _) in enumerate(batches(3)):
            net(x)
            viz.step(step)
        viz.close()
        viz.close()
    assert len([w for w in caught if issubclass(w.category, AutologWarning)]) == 1
    assert auto.report()["views"]["class_models"]["steps"] == []
    viz = CNNViz(make_net(), tmp_path / "b", probe_images=torch.rand(2, 3, 16, 16))
    assert set(viz.autolog().report()["skipped"]) == {"top_activations", "top_relevance", "embedding", "performance"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AutologWarning)
        viz.close()


def test_bad_autolog_arguments_say_what_is_right(tmp_path):
    viz = CNNViz(make_net(), tmp_path, probe_images=torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match=r"unknown \['saliencey'\]; the views are activations, .*grad_cam"):
        viz.autolog(views=["saliencey"])
    with pytest.raises(ValueError, match="top_activations reads a data set: pass data="):
        viz.autolog(views=["top_activations"])
    with pytest.raises(ValueError, match="budget must be a share"):
        viz.autolog(budget=5)
    viz.autolog(views=["filters"])
    with pytest.raises(RuntimeError, match="already on"):
        viz.autolog()
    viz.close()


def test_background_mode_leaves_training_bit_identical(tmp_path):
    plain_net, plain_opt, *_ = train(12, step_seconds=0.05)
    logged_net, logged_opt, auto, *_ = train(12, tmp_path, background=True, budget=0.5, step_seconds=0.05,
                                              views=["activations", "guided_backprop", "class_models", "correspondence"])
    assert sum(len(view["steps"]) for view in auto.report()["views"].values()) >= 2  # it did log, beside training
    assert_same_training(plain_net, plain_opt, logged_net, logged_opt)
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in logged_net.modules()) == 0
    assert not [t for t in threading.enumerate() if t.name == "tb_cnnviz-autolog"]  # close() ended the worker


def test_a_view_failing_in_the_worker_warns_and_training_goes_on(tmp_path):
    net = make_net()
    viz = CNNViz(net, tmp_path, probe_images=torch.rand(1, 3, 16, 16))  # one image: correspondence needs two
    auto = viz.autolog(budget=0.9, views=["correspondence", "filters"], background=True, min_every=1)
    with pytest.warns(LoggingFailedWarning, match="correspondence failed in the background .* at least two") as caught:
        for step, (x, _) in enumerate(batches(40)):
            net(x).sum().backward()
            time.sleep(0.005)
            viz.step(step)
        viz.close()
    assert {w.filename for w in caught if issubclass(w.category, LoggingFailedWarning)} == {__file__}  # at viz.step
    report = auto.report()["views"]
    assert "correspondence" not in report and report["filters"]["steps"]


def test_close_waits_for_the_view_in_flight(tmp_path):
    net = make_net()
    viz = CNNViz(net, tmp_path, probe_images=torch.rand(2, 3, 16, 16), probe_labels=[0, 1])
    auto = viz.autolog(budget=0.9, views=["class_models"], background=True)
    step = 0
    while not auto.worker.busy:  # train until the view is handed to the worker
        net(torch.rand(8, 3, 16, 16)).sum().backward()
        time.sleep(0.01)
        viz.step(step)
        step += 1
        assert step < 2000
    viz.close()
    assert auto.report()["views"]["class_models"]["steps"] == [step - 1]
    _, scalars = health_events(tmp_path)
    assert [s for s, _ in scalars["cnnviz/cost/class_models"]] == [step - 1]


def step_until(net, viz, auto, view, calls, at_least_steps=0, step_seconds=0.05):
    """Forward and ``viz.step`` until autolog logged ``view`` ``calls`` times (a loaded machine takes more
    steps), then close; autolog's report."""
    x, step = batches(1)[0][0], 0
    while step < at_least_steps or len(auto.report()["views"][view]["steps"]) < calls:
        net(x)
        time.sleep(step_seconds)
        viz.step(step)
        step += 1
        assert step < 3000, auto.report()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AutologWarning)
        viz.close()
    return auto.report()


def test_the_schedule_comes_back_through_tensorboard_as_the_report_says(tmp_path):
    """/schedule: each call's steps and measured seconds as ``report()`` has them, a view that never fit listed
    with its estimate, the budget and the share spent (through the real TensorBoard app)."""
    net = make_net()
    viz = CNNViz(net, tmp_path / "run", probe_images=torch.rand(2, 3, 16, 16))
    auto = viz.autolog(budget=0.5, views=["activations", "class_models"], min_every=1)
    report = step_until(net, viz, auto, "activations", calls=2)
    assert report["views"]["activations"]["steps"] and not report["views"]["class_models"]["steps"]
    status, reply = get_json(tensorboard_client(tmp_path, "false"), "schedule", run="run")
    assert status == 200, reply
    views = {view["name"]: view for view in reply["views"]}
    assert list(views) == ["activations", "class_models"]  # in autolog's order
    assert views["activations"]["steps"] == report["views"]["activations"]["steps"]
    assert views["activations"]["seconds"] == pytest.approx(report["views"]["activations"]["seconds"], abs=1e-6)
    assert not views["activations"]["never_fit"] and views["class_models"]["never_fit"]
    estimated = report["views"]["class_models"]["estimated_seconds"]
    assert views["class_models"]["estimated_seconds"] == pytest.approx(estimated, rel=1e-5)
    assert reply["budget"] == pytest.approx(0.5) and all(0 <= v <= 1 for v in reply["share"]["values"])
    status, reply = get_json(tensorboard_client(tmp_path, "false"), "schedule", run="nope")
    assert status == 404 and "nope" in reply["error"]


def test_both_rankings_of_top_patches_are_scheduled_and_reach_the_tab(tmp_path):
    """The patches that fire and the patches that matter (``top_relevance``): two calls of one view, each
    logged on its own schedule, the relevance ranking explaining the data's labels."""
    net = make_net()
    viz = CNNViz(net, tmp_path / "run", probe_images=torch.rand(2, 3, 16, 16))
    auto = viz.autolog(budget=0.9, views=["top_activations"], data=batches(2, seed=3), min_every=1)
    report = step_until(net, viz, auto, "top_relevance", calls=1)
    assert report["views"]["top_activations"]["steps"] and report["views"]["top_relevance"]["steps"]
    _, runs = get_json(tensorboard_client(tmp_path, "false"), "runs")
    (entry,) = runs["runs"]
    assert entry["top_activations"] == ["4", "4 (relevance)"]  # the middle convolution with a grid
    step = report["views"]["top_relevance"]["steps"][0]
    status, sample = get_json(tensorboard_client(tmp_path, "false"), "sample", run="run", kind="top_activations",
                              layer="4 (relevance)", step=step)
    assert status == 200 and (sample["meta"]["rank"], sample["meta"]["target"]) == ("relevance", "label")
