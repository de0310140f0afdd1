"""Map stability: the rank correlation against scipy.stats.spearmanr (ties, constant and NaN rows), and each
map's stability against its previous logged step through real event files and TensorBoard's real app, read
back equal to scipy's answer on maps computed here; no point (never a wrong one) on a first step, a resumed
run, changed images or classes, other settings, NaN maps; methods logged at different steps each get
theirs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.stats
import torch
from helpers import get_json, tensorboard_client
from torch import nn

from tb_cnnviz import CNNViz
from tb_cnnviz.methods import grad_cam, occlusion, rank_correlation, saliency
from tb_cnnviz.views import map_stability


def scipy_rho(a: torch.Tensor, b: torch.Tensor) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on a constant row, and answers NaN
        rho = scipy.stats.spearmanr(a.flatten().double().numpy(), b.flatten().double().numpy()).statistic
        return float(rho)


def test_rank_correlation_equals_scipy_with_ties_and_infinities():
    generator = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (6, 3, 7, 9), generator=generator).float()  # heavy ties, 4-d: compared flattened
    b = a + torch.randn(a.shape, generator=generator) * 2
    b[1] = torch.randint(0, 2, b[1].shape, generator=generator).float()  # two values only
    b[2] = -a[2]  # reversed order: -1
    a[3, 0, 0, :3] = float("inf")
    b[3, 1, 2, 4] = -float("inf")
    b[4] = a[4] * 10 + 3  # same order, other scale: 1
    ours = rank_correlation(a, b)
    assert ours.dtype == torch.float64 and ours.shape == (6,)
    for n in range(6):
        assert ours[n].item() == pytest.approx(scipy_rho(a[n], b[n]), abs=1e-9)
    assert ours[2].item() == pytest.approx(-1.0) and ours[4].item() == pytest.approx(1.0)


def test_constant_or_nan_rows_are_nan_as_in_scipy_and_never_raise():
    generator = torch.Generator().manual_seed(1)
    a = torch.rand(4, 10, 10, generator=generator)
    b = torch.rand(4, 10, 10, generator=generator)
    b[0] = 0.25  # constant: no order
    a[1, 3, 3] = float("nan")
    b[2] = float("nan")
    ours = rank_correlation(a, b)
    expected = [scipy_rho(a[n], b[n]) for n in range(4)]
    assert np.isnan(expected[:3]).all() and np.isnan(ours[:3].numpy()).all()
    assert ours[3].item() == pytest.approx(expected[3], abs=1e-9)  # the other rows are untouched
    assert torch.isnan(rank_correlation(torch.ones(2, 1), torch.zeros(2, 1))).all()  # a single value per row


@pytest.mark.parametrize("a, b, error, words", [
    ([1.0, 2.0], torch.ones(2), TypeError, "a must be a torch.Tensor"),
    (torch.ones(2, 3), torch.ones(2, 4), ValueError, "same shape"),
    (torch.ones(2, 3, dtype=torch.bool), torch.ones(2, 3, dtype=torch.bool), ValueError, "real numbers"),
    (torch.tensor(1.0), torch.tensor(1.0), ValueError, "leading image axis"),
])
def test_bad_arguments_are_named(a, b, error, words):
    with pytest.raises(error, match=words):
        rank_correlation(a, b)


class Net(nn.Module):
    def __init__(self, classes: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        return self.fc(self.relu(self.conv2(self.relu(self.conv1(x)))).mean(dim=(2, 3)))


def train_a_little(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(3):
        loss = nn.functional.cross_entropy(model(x), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def logged(client, method: str, step: int) -> dict:
    status, sample = get_json(client, "sample", run="run", kind="attribution", layer=method, step=step)
    assert status == 200, sample
    return sample["meta"]["stability"]


def scalar_points(client, tag: str) -> list:
    reply = client.get("/data/plugin/scalars/scalars", query_string={"run": "run", "tag": f"cnnviz/{tag}"})
    return [] if reply.status_code != 200 else [point[1:] for point in reply.json]


@pytest.mark.parametrize("load_fast", ["false", "true"], ids=["python_loader", "rust_data_server"])
def test_stability_reads_back_as_scipy_gives_it_on_maps_made_here(tmp_path, load_fast):
    torch.manual_seed(0)
    model = Net()
    x = torch.randn(3, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2])
    made = {"saliency": {}, "grad_cam": {}, "occlusion": {}}
    labelled = {"probe_images": x, "probe_labels": labels.tolist(), "raise_errors": True}
    with CNNViz(model, tmp_path / "run", **labelled) as viz:
        for step in (0, 10, 20, 30):
            viz.log_saliency(step, method="saliency")
            made["saliency"][step] = saliency(model, x, labels).abs().amax(dim=1)
            if step >= 10:  # another method, first logged later: its own first step has no point
                viz.log_saliency(step, method="grad_cam")
                made["grad_cam"][step] = grad_cam(model, x, labels, layer="conv2").upsampled
            if step in (0, 30):  # logged twice only: its point compares step 30 with step 0
                viz.log_occlusion(step, window=4, stride=2)
                made["occlusion"][step] = occlusion(model, x, labels, window=4, stride=2)
            train_a_little(model, x, labels)
    client = tensorboard_client(tmp_path, load_fast)
    for method, maps in made.items():
        steps = sorted(maps)
        first = logged(client, method, steps[0])
        assert first["previous_step"] is None and first["rank_correlation"] == [None] * 3
        assert first["why"] == [map_stability.NO_EARLIER_MAP] * 3
        means = []
        for previous, step in zip(steps, steps[1:]):
            stability = logged(client, method, step)
            assert stability["previous_step"] == previous
            expected = [scipy_rho(maps[step][n], maps[previous][n]) for n in range(3)]
            np.testing.assert_allclose(stability["rank_correlation"], expected, rtol=1e-3, atol=1e-4)
            assert stability["why"] == [None] * 3
            means.append([step, pytest.approx(float(np.mean(expected)), abs=1e-4)])
        assert scalar_points(client, f"map_stability/{method}") == means
    # the maps did change as the net trained: the curve is not trivially 1
    assert min(logged(client, "saliency", 10)["rank_correlation"]) < 0.999


def test_no_point_rather_than_a_wrong_one(tmp_path):
    torch.manual_seed(0)
    model = Net()
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    other = x.clone()
    other[1] += 1.0
    with CNNViz(model, tmp_path / "run", probe_images=x, probe_labels=[0, 1], raise_errors=True) as viz:
        viz.log_saliency(0, method="saliency")
        viz.log_saliency(5, method="saliency", images=other, targets=[0, 1])  # image 1 changed
        viz.log_saliency(10, method="saliency", images=other, targets=[0, 3])  # image 1: another class
        viz.log_saliency(15, method="saliency", smooth=True, n=2)  # another map name: a curve of its own
        viz.log_saliency(15, method="saliency", smooth=True, n=2)  # the same step again: no point
        viz.log_occlusion(20, window=4)
        viz.log_occlusion(25, window=6)  # other settings
    with CNNViz(model, tmp_path / "run", probe_images=x, probe_labels=[0, 1], raise_errors=True) as viz:
        viz.log_saliency(30, method="saliency")  # a resumed run: a new process remembers no map
    client = tensorboard_client(tmp_path, "false")
    at5 = logged(client, "saliency", 5)
    assert at5["previous_step"] == 0 and at5["rank_correlation"][1] is None
    assert isinstance(at5["rank_correlation"][0], float) and at5["why"] == [None, map_stability.IMAGE_CHANGED]
    at10 = logged(client, "saliency", 10)
    assert at10["why"] == [None, map_stability.CLASS_CHANGED] and at10["rank_correlation"][1] is None
    assert logged(client, "smoothgrad(saliency)", 15)["why"] == [map_stability.STEP_NOT_AFTER] * 2
    assert logged(client, "occlusion", 25)["rank_correlation"] == [None, None]
    assert "settings" in logged(client, "occlusion", 25)["why"][0]
    assert logged(client, "saliency", 30)["why"] == [map_stability.NO_EARLIER_MAP] * 2
    assert scalar_points(client, "map_stability/occlusion") == []  # no point, no scalar
    assert [step for step, _ in scalar_points(client, "map_stability/saliency")] == [5, 10]


def test_nan_maps_and_a_single_step_never_crash(tmp_path):
    torch.manual_seed(0)
    model = Net()
    x = torch.randn(2, 3, 12, 12)
    with CNNViz(model, tmp_path / "run", probe_images=x, raise_errors=True) as viz:
        viz.log_saliency(0, method="grad_cam")  # logged once: no curve yet
        viz.log_saliency(0, method="saliency")
        with torch.no_grad():
            model.conv1.weight[0, 0, 0, 0] = float("nan")  # every map NaN from here on
        viz.log_saliency(1, method="saliency")
        viz.log_saliency(2, method="saliency")
    client = tensorboard_client(tmp_path, "false")
    assert logged(client, "grad_cam", 0)["previous_step"] is None
    for step in (1, 2):
        stability = logged(client, "saliency", step)
        assert stability["previous_step"] == step - 1
        assert stability["rank_correlation"] == [None, None]
        assert stability["why"] == [map_stability.NOT_RANKABLE] * 2
    assert scalar_points(client, "map_stability/saliency") == []
    assert scalar_points(client, "map_stability/grad_cam") == []


def test_autolog_worker_shares_the_history():
    """autolog logs on a copy of the run (dataclasses.replace): the copy compares with the same history."""
    import dataclasses

    from tb_cnnviz.views.declaration import LoggingRun

    run = LoggingRun(sink=None, model=Net())
    assert dataclasses.replace(run, _cam_layer=None).map_history is run.map_history
