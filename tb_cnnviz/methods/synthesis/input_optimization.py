"""The loop that every "image made by the network" shares: gradient steps on an input (never on the model),
with a bounded number of steps, a seeded generator and a progress bar.

The model runs in eval mode with its parameters frozen, so no gradient is ever left on them; modes,
``requires_grad`` and RNG states are restored on exit (``preserved_state``), also on error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from tqdm.auto import tqdm

from .._hooks import model_device, preserved_state
from ..streaming import bar_options

#: An optimisation longer than this is almost surely a typo (and would hold the training loop for minutes).
MAX_STEPS = 10_000

#: Early stopping: the loss is averaged over windows of this many steps (one host synchronisation a window)...
STOP_WINDOW = 10
#: ... and the optimisation stops when the last ``STOP_PATIENCE`` windows together improved the best window's
#: loss by less than ``tolerance`` of the improvement since the first window (``stopped_improving``).
STOP_PATIENCE = 3

#: ``objective(step)`` -> (the loss to minimise, a per-image value (N,) to record for this step).
Objective = Callable[[int], "tuple[torch.Tensor, torch.Tensor]"]


def check_steps(steps: object) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be an int from 1 to {MAX_STEPS}; got {steps!r}")
    return steps


def check_non_negative(**values: object) -> None:
    """Each keyword must be a real number >= 0; the error names it."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"{name} must be a number >= 0; got {value!r}")


def check_positive(**values: object) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{name} must be a number > 0; got {value!r}")


def seeded_generator(seed: int | None, device: torch.device) -> torch.Generator:
    """A generator of its own, so the optimisation neither reads nor advances the global RNG."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed must be an int or None; got {type(seed).__name__}")
    generator = torch.Generator(device=device)
    generator.manual_seed(seed if seed is not None else torch.randint(0, 2**62, (1,)).item())
    return generator


@contextmanager
def frozen(model: nn.Module) -> Iterator[torch.device]:
    """The model in eval mode with every parameter's ``requires_grad`` off, restored on exit; yields its device."""
    with preserved_state(model):
        model.eval()
        for param in model.parameters():
            param.requires_grad_(False)
        yield model_device(model)


def check_tolerance(tolerance: object) -> float | None:
    if tolerance is None:
        return None
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be a number in [0, 1) or None (never stop early); "
                         f"got {tolerance!r}")
    return float(tolerance)


def stopped_improving(window_losses: Sequence[float], tolerance: float,
                      patience: int = STOP_PATIENCE) -> bool:
    """Whether the last ``patience`` windows improved the best mean loss by less than ``tolerance`` times the
    improvement from the first window to the best before them: a rule free of the loss's offset and scale
    (a logit, a code error), that waits while the loss still falls at a fair share of its pace so far."""
    if len(window_losses) <= patience + 1:
        return False
    before = min(window_losses[:-patience])
    gained = window_losses[0] - before
    recent = before - min(window_losses[-patience:])
    return gained > 0 and recent < tolerance * gained


#: ``objective(x)`` -> (each row's loss (R,), a per-row value (R,) to record), for :func:`optimize_lbfgs`.
RowObjective = Callable[[torch.Tensor], "tuple[torch.Tensor, torch.Tensor]"]

#: L-BFGS's memory: the last this many steps and gradient changes of each row.
LBFGS_HISTORY = 10
#: Armijo's sufficient decrease: a trial step is taken when it lowers the row's loss by this share of the
#: decrease its slope predicts.
ARMIJO = 1e-4


def optimize_lbfgs(variable: torch.Tensor, objective: RowObjective, steps: int, description: str,
                   progress: bool | None = None, history_size: int = LBFGS_HISTORY) -> torch.Tensor:
    """L-BFGS on each row of ``variable`` (R, ...) on its own, all rows evaluated together: ``steps``
    evaluations of ``objective`` (each one batched forward and backward), whose rows must not interact (the
    model in eval mode), so each row follows the path it would alone. Each row has its own history of the last
    ``history_size`` steps and gradient changes (the two-loop recursion vectorised over the rows) and its own
    backtracking line search: a trial step is kept when it meets Armijo's condition, else it is cut by a
    safeguarded quadratic fit and tried at the next evaluation; a kept step starts the next trial at 1 along
    the new direction (the first at ``min(1, 1/|g|_1)``, as torch's LBFGS). The rows share one ring of
    ``history_size`` slots, one per evaluation: a failed trial, or a kept step whose curvature is not
    positive, leaves its row's slot empty. Writes the iterates into ``variable`` and returns each row's
    recorded value at its current iterate after each evaluation, (steps, R). ``objective`` must be the same
    function at every call (no random jitter). Call inside :func:`frozen`.

    Nocedal & Wright, "Numerical Optimization", algorithm 7.4 (two-loop recursion) and 3.1 with (3.57)
    (backtracking by quadratic interpolation)."""
    shape = variable.shape
    x = variable.detach().flatten(1).clone()

    def evaluate(point: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        point = point.view(shape).requires_grad_(True)
        loss, record = objective(point)
        (gradient,) = torch.autograd.grad(loss.sum(), [point])
        return loss.detach()[:, None], gradient.flatten(1), record.detach()

    bar = tqdm(total=steps, desc=description, unit="step", **bar_options(progress))
    s_memory = x.new_zeros((history_size, *x.shape))
    y_memory = x.new_zeros((history_size, *x.shape))
    rho = x.new_zeros((history_size, len(x), 1))  # 0: an empty slot, which changes nothing
    scale = x.new_ones((len(x), 1))  # the initial inverse Hessian: s.y / y.y of the row's newest pair
    with torch.enable_grad():
        loss, gradient, record = evaluate(x)
    bar.update()
    history = [record]
    direction = -gradient
    slope = -_row_dot(gradient, gradient)
    step = (1 / gradient.abs().sum(1, keepdim=True)).clamp(max=1.0)
    for evaluation in range(1, steps):
        trial = torch.addcmul(x, step, direction)
        with torch.enable_grad():
            trial_loss, trial_gradient, trial_record = evaluate(trial)
        bar.update()
        change = trial_loss - loss
        taken = change <= ARMIJO * step * slope  # (R, 1); NaN compares False: never taken
        s, y = trial - x, trial_gradient - gradient
        curvature = _row_dot(s, y)
        remember = taken & (curvature > 1e-10)
        slot = (evaluation - 1) % history_size
        s_memory[slot] = s.mul_(remember)
        y_memory[slot] = y.mul_(remember)
        rho[slot] = torch.where(remember, 1 / curvature, 0.0)
        scale = torch.where(remember, curvature / _row_dot(y, y).clamp_min(1e-30), scale)
        x = torch.where(taken, trial, x)
        loss = torch.where(taken, trial_loss, loss)
        gradient = torch.where(taken, trial_gradient, gradient)
        record = torch.where(taken[:, 0], trial_record, record)
        history.append(record)
        order = [(slot - k) % history_size for k in range(min(evaluation, history_size))]
        new_direction = _two_loop(gradient, s_memory, y_memory, rho, scale, order)
        new_slope = _row_dot(gradient, new_direction)
        # a kept step: the next trial at 1 along the new direction (steepest descent if that is not downhill);
        # a failed one: the minimum of the quadratic through the loss, the slope and the trial's loss, kept
        # in [0.1, 0.5] of the step (0.1 when the trial's loss is not finite)
        downhill = new_slope < 0
        direction = torch.where(taken, torch.where(downhill, new_direction, -gradient), direction)
        slope = torch.where(taken, torch.where(downhill, new_slope, -_row_dot(gradient, gradient)), slope)
        fitted = -slope * step * step / (2 * (change - slope * step)).clamp_min(1e-30)
        shorter = torch.where(torch.isfinite(trial_loss), torch.minimum(torch.maximum(fitted, 0.1 * step),
                                                                         0.5 * step), 0.1 * step)
        step = torch.where(taken, 1.0, shorter)
    bar.close()
    with torch.no_grad():
        variable.copy_(x.view(shape))
    return torch.stack(history)


def _two_loop(gradient: torch.Tensor, s_memory: torch.Tensor, y_memory: torch.Tensor, rho: torch.Tensor,
              scale: torch.Tensor, order: Sequence[int]) -> torch.Tensor:
    """-H g for each row: the two-loop recursion over the slots ``order`` (newest first) of the rows'
    histories (m, R, D), from ``scale`` times the identity."""
    q = gradient.clone()
    alphas = []
    for i in order:
        alpha = rho[i] * _row_dot(s_memory[i], q)
        q.addcmul_(alpha, y_memory[i], value=-1)
        alphas.append(alpha)
    r = q.mul_(scale)
    for i, alpha in zip(reversed(order), reversed(alphas)):
        r.addcmul_(alpha - rho[i] * _row_dot(y_memory[i], r), s_memory[i])
    return r.neg_()


def _row_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(R, 1) dot product of each row of ``a`` and ``b`` (R, D)."""
    return (a * b).sum(1, keepdim=True)


def optimize(
    variables: Sequence[torch.Tensor],
    objective: Objective,
    steps: int,
    lr: float,
    description: str,
    progress: bool | None = None,
    tolerance: float | None = None,
) -> torch.Tensor:
    """Adam on ``variables`` for at most ``steps`` steps, fewer when ``tolerance`` is set and the loss
    stopped improving (:func:`stopped_improving`, checked every ``STOP_WINDOW`` steps); returns the
    recorded values, (steps taken, N), kept on the device. Call inside :func:`frozen`."""
    optimizer = torch.optim.Adam(variables, lr=lr)
    history: list[torch.Tensor] = []
    losses: list[torch.Tensor] = []
    windows: list[float] = []
    bar = tqdm(range(steps), desc=description, unit="step", **bar_options(progress))
    with torch.enable_grad():
        for step in bar:
            loss, record = objective(step)
            gradients = torch.autograd.grad(loss, variables)
            for variable, gradient in zip(variables, gradients):
                variable.grad = gradient
            optimizer.step()
            history.append(record.detach())
            if tolerance is None:
                continue
            losses.append(loss.detach())
            if len(losses) == STOP_WINDOW:
                windows.append(torch.stack(losses).mean().item())  # the one synchronisation per window
                losses.clear()
                if stopped_improving(windows, tolerance):
                    break
    bar.close()
    return torch.stack(history)
