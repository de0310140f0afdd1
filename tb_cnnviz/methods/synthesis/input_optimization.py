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


def optimize_lbfgs(variable: torch.Tensor, objective: Objective, steps: int, description: str,
                   progress: bool | None = None) -> torch.Tensor:
    """L-BFGS (history 10, strong-Wolfe line search, torch's convergence tolerances) on ``variable`` for at most
    ``steps`` evaluations of ``objective`` (each one forward and backward, the cost of an Adam step), fewer when
    it converged; returns the values recorded at each evaluation, (evaluations, N). ``objective`` must be the
    same function at every call (no random jitter): the line search compares its values. Call inside
    :func:`frozen`."""
    optimizer = torch.optim.LBFGS([variable], max_iter=steps, max_eval=steps, history_size=10,
                                  line_search_fn="strong_wolfe")
    history: list[torch.Tensor] = []
    bar = tqdm(total=steps, desc=description, unit="step", **bar_options(progress))

    def closure() -> torch.Tensor:
        loss, record = objective(len(history))
        (gradient,) = torch.autograd.grad(loss, [variable])
        variable.grad = gradient
        history.append(record.detach())
        bar.update()
        return loss.detach()

    with torch.enable_grad():
        optimizer.step(closure)
    bar.close()
    variable.grad = None
    return torch.stack(history[:steps])  # the line search may end one evaluation past max_eval


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
