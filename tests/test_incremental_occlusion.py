"""Incremental occlusion (recompute only what the occluder changes) gives the naive per-position loop's map,
on torchvision models with random weights, odd geometries, and the paths where it falls back."""

from __future__ import annotations

import warnings

import pytest
import torch
import torchvision
from torch import nn

from helpers import assert_same_state, model_state, naive_occlusion
from tb_cnnviz.methods.attribution.occlusion import occlusion, occlusion_plan

TOLERANCE = 1e-4


def kinds(model: nn.Module, image: torch.Tensor, window: int, stride: int) -> dict[str, int]:
    plan = occlusion_plan(model, image, window, stride)
    counts: dict[str, int] = {}
    for step in plan.steps.values():
        counts[step.kind] = counts.get(step.kind, 0) + 1
    return counts


def check_against_naive(model: nn.Module, x: torch.Tensor, window: int, stride: int, fill: float = 0.0,
                        batch_size: int = 64) -> torch.Tensor:
    model.eval()
    target = model(x).argmax(dim=1)
    expected = naive_occlusion(model, x, target, window, stride, fill)
    got = occlusion(model, x, target, window=window, stride=stride, fill=fill, batch_size=batch_size, progress=False)
    torch.testing.assert_close(got, expected, atol=TOLERANCE, rtol=0)
    return expected


def calibrated(model: nn.Module, size: int) -> nn.Module:
    """Random weights with batch-norm statistics of the data (as after training), so that the class scores,
    and the occlusion map, vary visibly instead of collapsing to a constant."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # a plain average over the calibration batch
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        model.train()(torch.randn(8, 3, size, size))
        if not norms:  # nothing rescales the signal: a larger last layer spreads the scores instead
            [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1].weight.mul_(20)
    return model.eval()


FAST = ["resnet18", "mobilenet_v3_small", "squeezenet1_1", "shufflenet_v2_x0_5"]
SLOW = ["resnet50", "vgg11", "vgg16", "alexnet", "mobilenet_v2", "mnasnet0_5", "densenet121", "efficientnet_b0",
        "googlenet", "regnet_y_400mf"]
SIZE = 64


def build(name: str) -> nn.Module:
    torch.manual_seed(0)
    kwargs = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
    return calibrated(getattr(torchvision.models, name)(weights=None, num_classes=10, **kwargs), SIZE)


@pytest.mark.parametrize("name", FAST + [pytest.param(n, marks=pytest.mark.slow) for n in SLOW])
def test_equals_the_naive_loop_on_torchvision_models(name: str) -> None:
    model = build(name)
    x = torch.randn(1, 3, SIZE, SIZE)
    expected = check_against_naive(model, x, window=24, stride=20)  # 3 x 3 positions, window not dividing 64
    assert expected.max() - expected.min() > 10 * TOLERANCE  # a map that a wrong patch would visibly change


def test_residual_networks_really_run_incrementally() -> None:
    """The exactness above must not come from falling back: resnet18 runs its early convs on patches, and
    the multiply-add limit matches the geometry (a 32-px occluder on 224 changes little of the early maps)."""
    model = build("resnet18")
    image = torch.randn(1, 3, 224, 224)
    counts = kinds(model, image, 32, 16)
    assert counts["window"] >= 10 and counts["union"] >= 3
    plan = occlusion_plan(model, image, 32, 16)
    assert 1.5 < plan.patch_speedup <= plan.speedup_limit < 4


class Tiny(nn.Module):
    """Every rule on one small graph: padded and dilated convs, -inf padded max-pool in ceil mode, avg-pool,
    a concatenation, residual adds of patches of different sizes, a scalar op, and the full tail."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True))
        self.pool = nn.MaxPool2d(3, 2, padding=1, ceil_mode=True)
        self.wide = nn.Conv2d(8, 8, 3, padding=2, dilation=2)
        self.narrow = nn.Conv2d(8, 4, 1)
        self.down = nn.Conv2d(12, 12, 3, stride=2, padding=1)
        self.skip = nn.AvgPool2d(3, 2, padding=1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 5))
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5), module.running_var.uniform_(0.5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.stem(x))
        x = torch.cat([torch.relu(self.wide(x)) + x, self.narrow(x)], dim=1)
        x = self.down(x) * 2.0 + self.skip(x)
        return self.head(x) * 10


@pytest.mark.parametrize("size, window, stride, count", [
    ((20, 20), 8, 1, 1),  # stride 1: neighbouring positions overlap
    ((33, 47), 10, 7, 1),  # non-square, window dividing neither side
    ((24, 24), 6, 6, 3),  # several images, each its own target
    ((17, 17), 17, 3, 1),  # the window is the whole image: one position
])
def test_odd_geometries(size: tuple[int, int], window: int, stride: int, count: int) -> None:
    torch.manual_seed(1)
    model = Tiny().eval()
    x = torch.randn(count, 3, *size)
    check_against_naive(model, x, window, stride, fill=0.5, batch_size=7)  # batches that do not divide the grid
    assert kinds(model, x[:1], window, stride).get("window", 0) >= 1 or window == size[0]


def test_model_state_is_left_as_found_and_plain_path_agrees() -> None:
    torch.manual_seed(2)
    model = Tiny().train()
    x = torch.randn(2, 3, 20, 20)
    before = model_state(model)
    incremental = occlusion(model, x, 1, window=6, stride=4, progress=False)
    plain = occlusion(model, x, 1, window=6, stride=4, progress=False, incremental=False)
    assert_same_state(before, model_state(model))
    torch.testing.assert_close(incremental, plain, atol=TOLERANCE, rtol=0)


class DataDependent(nn.Module):
    """Python control flow on tensor values: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if x.mean() > 0:
            x = -x
        return self.fc(x.amax(dim=(2, 3)))


def test_untraceable_model_falls_back_with_one_line_notice() -> None:
    torch.manual_seed(3)
    model = DataDependent().eval()
    x = torch.randn(1, 3, 16, 16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_against_naive(model, x, window=5, stride=3)
    notices = [str(w.message) for w in caught if "cannot trace" in str(w.message)]
    assert len(notices) == 1 and "\n" not in notices[0] and "DataDependent" in notices[0]


class UnknownFirst(nn.Module):
    """Its first op (group norm mixes the whole map) has no local rule: everything runs in full."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(1, 3)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(self.norm(x)).mean(dim=(2, 3)))


def test_unknown_first_op_falls_back_to_the_full_forward() -> None:
    torch.manual_seed(4)
    model = UnknownFirst().eval()
    x = torch.randn(1, 3, 16, 16)
    check_against_naive(model, x, window=5, stride=3)
    counts = kinds(model, x, 5, 3)
    assert "window" not in counts and "pointwise" not in counts


def test_approximate_mode_is_opt_in_and_its_error_is_measured() -> None:
    torch.manual_seed(6)
    model = Tiny().eval()
    x = torch.randn(1, 3, 32, 32)
    exact = occlusion(model, x, 0, window=8, stride=8, progress=False)
    same = occlusion(model, x, 0, window=8, stride=8, progress=False, approximate=1.0)
    torch.testing.assert_close(same, exact, atol=TOLERANCE, rtol=0)  # tau = 1 caps nothing
    # its error against a measured bound: test_approximate_error_stays_within_the_measured_bound
    cheaper = occlusion_plan(model, x, 8, 8, approximate=0.3)
    assert cheaper.macs("patch_macs") < occlusion_plan(model, x, 8, 8).macs("patch_macs")


#: The approximate map's error measured on the case below (Tiny, seed 6, its head scaled by 0.1 so that the
#: predicted class's probability moves with the occluder; 32x32, window 8, stride 4) when the cap was written:
#: tau -> (max abs error, that error over the exact map's spread, Spearman correlation with the exact map).
MEASURED_APPROXIMATION = {0.5: (1.46e-3, 0.17, 0.978), 0.3: (9.7e-3, 1.12, 0.61)}


def test_approximate_error_stays_within_the_measured_bound() -> None:
    """Krypton's cap trades accuracy for speed; a change that makes the map rougher than measured fails here
    (bounds: the measured error with a margin of 1.5x, the correlation less 0.1)."""
    from scipy.stats import spearmanr

    torch.manual_seed(6)
    model = Tiny().eval()
    with torch.no_grad():
        model.head[2].weight.mul_(0.1)
    x = torch.randn(1, 3, 32, 32)
    target = int(model(x).argmax())
    exact = naive_occlusion(model, x, torch.tensor([target]), 8, 4, 0.0)
    spread = float(exact.max() - exact.min())
    assert spread > 1e-3  # the map varies: an error can be told from noise
    loose = occlusion(model, x, target, window=8, stride=4, progress=False, approximate=0.7)
    torch.testing.assert_close(loose, exact, atol=TOLERANCE, rtol=0)  # caps above every changed box change nothing
    errors = {}
    for tau, (error, relative, correlation) in MEASURED_APPROXIMATION.items():
        rough = occlusion(model, x, target, window=8, stride=4, progress=False, approximate=tau)
        errors[tau] = float((rough - exact).abs().max())
        rho = spearmanr(rough.flatten().numpy(), exact.flatten().numpy())[0]
        print(f"tau={tau}: max abs error {errors[tau]:.3g} ({errors[tau] / spread:.2f} of the spread), Spearman {rho:.3f}")
        assert TOLERANCE < errors[tau] <= 1.5 * error, (tau, errors[tau])
        assert errors[tau] / spread <= 1.5 * relative and rho >= correlation - 0.1, (tau, errors[tau] / spread, rho)
    assert errors[0.3] > errors[0.5]  # a tighter cap, a rougher map


@pytest.mark.parametrize("bad", [0, 1.5, -0.1, True, "0.5"])
def test_approximate_must_be_a_fraction(bad: object) -> None:
    with pytest.raises(ValueError, match="approximate"):
        occlusion(Tiny().eval(), torch.randn(1, 3, 16, 16), 0, window=4, stride=4, approximate=bad)


def test_memory_cap_lowers_the_batch_not_the_result() -> None:
    torch.manual_seed(5)
    model = Tiny().eval()
    x = torch.randn(1, 3, 20, 20)
    capped = occlusion(model, x, 2, window=6, stride=2, progress=False, max_memory_mb=0.01)
    torch.testing.assert_close(capped, occlusion(model, x, 2, window=6, stride=2, progress=False), atol=TOLERANCE, rtol=0)
    with pytest.raises(ValueError, match="max_memory_mb"):
        occlusion(model, x, 2, window=6, stride=2, max_memory_mb=0)
