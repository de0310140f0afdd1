"""The guard around every CNNViz logging call: a failure warns once and training goes on.

Why a module of its own: one policy for every logging call, kept apart from the facade (``logger.py``) whose
methods it wraps, and from the views, which raise like any library code.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import warnings
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class LoggingFailedWarning(UserWarning):
    """A logging call failed; training goes on."""


def logging_call(method: F | None = None, *, collective: bool = False) -> Any:
    """Turn an exception into one warning per distinct failure, unless the user asked for errors. A view that
    is not ``collective`` does nothing on DDP ranks that do not write (no work, no collective). Failures are
    told apart by the call's text arguments too (``method="grad_cam"`` failing as ``method="saliency"`` did is
    another failure, warned again)."""
    if method is None:
        return functools.partial(logging_call, collective=collective)

    @functools.wraps(method)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not collective and not self.writes:
            return None
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            if self.raise_errors:
                raise
            key = (method.__name__, _named_choices(method, self, args, kwargs), type(exc).__name__, str(exc))
            if key not in self._reported_failures:
                self._reported_failures.add(key)
                warn_at_user(f"tb_cnnviz: {method.__name__} failed and was skipped (training continues): "
                             f"{type(exc).__name__}: {exc}", LoggingFailedWarning)
            return None

    return guarded  # type: ignore[return-value]


def _named_choices(method: Callable[..., Any], viz: Any, args: tuple, kwargs: dict) -> tuple:
    """The call's text arguments (a method's name, a layer): what tells one use of a logging call from another."""
    try:
        bound = inspect.signature(method).bind(viz, *args, **kwargs)
    except TypeError:  # the call itself was malformed: its message says so
        return ()
    return tuple((name, value) for name, value in bound.arguments.items() if isinstance(value, str))


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn_at_user(message: str, category: type[Warning] = UserWarning) -> None:
    """Warn with the user's line as the place: the first caller outside this package (``viz.step(step)`` in
    the training loop, not the library line that flushed), however deep in the package the warning starts.
    What ``warnings.warn(skip_file_prefixes=...)`` does from Python 3.12."""
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level + 1)
