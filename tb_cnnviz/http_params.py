"""The plugin's request parameters and the JSON answer of its routes: every bad parameter a 400 that says what
is allowed, every error JSON with its 4xx code, never a 500 with a traceback. No torch here.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from tensorboard import errors
from tensorboard.backend import http_util
from werkzeug import wrappers

logger = logging.getLogger("tb_cnnviz.plugin")

MAX_PARAM_CHARS = 4096
INT64 = 2**63


class BadRequest(errors.InvalidArgumentError):
    pass


def text(request: wrappers.Request, name: str) -> str:
    value = request.args.get(name)
    if value is None or value == "":
        raise BadRequest(f"missing parameter {name!r}")
    if "\x00" in value or len(value) > MAX_PARAM_CHARS:
        raise BadRequest(f"parameter {name!r} must be text of at most {MAX_PARAM_CHARS} characters without NUL")
    return value


def integer(request: wrappers.Request, name: str, minimum: int = -INT64) -> int:
    raw = text(request, name)
    try:
        value = int(raw, 10)
    except ValueError:
        raise BadRequest(f"parameter {name!r} must be an integer; got {raw[:40]!r}") from None
    if not minimum <= value < INT64:
        raise BadRequest(f"parameter {name!r} must be an integer in [{minimum}, 2**63); got {raw[:40]}")
    return value


def optional_integer(request: wrappers.Request, name: str, default: int, minimum: int, maximum: int) -> int:
    if request.args.get(name) in (None, ""):
        return default
    value = integer(request, name, minimum)
    if value > maximum:
        raise BadRequest(f"parameter {name!r} must be an integer in [{minimum}, {maximum}]; got {value}")
    return value


def optional_text(request: wrappers.Request, name: str) -> str:
    """An optional text parameter; "" when absent."""
    return text(request, name) if request.args.get(name) else ""


def model(request: wrappers.Request) -> str:
    """Which model of the run (``CNNViz(..., name=...)``); absent or empty: the unnamed one."""
    return optional_text(request, "model")


def kind(request: wrappers.Request, allowed: tuple[str, ...], formerly: dict[str, str] | None = None) -> str:
    """The ``kind`` parameter, one of ``allowed``; a renamed view's former kind (``formerly``) answers as its
    new name, so a link made before the rename still works."""
    kind = text(request, "kind")
    kind = (formerly or {}).get(kind, kind)
    if kind not in allowed:
        raise BadRequest(f"parameter 'kind' must be one of {', '.join(allowed)}; got {kind[:40]!r}")
    return kind


def json_route(handler: Callable[[Any, wrappers.Request], Any]) -> Callable[..., wrappers.Response]:
    """Answer every error as JSON with its 4xx code; an unexpected one as an opaque 500, never a traceback."""

    def route(self: Any, request: wrappers.Request) -> wrappers.Response:
        try:
            result = handler(self, request)
        except errors.PublicError as exc:
            return http_util.Respond(request, {"error": str(exc)}, "application/json", code=exc.http_code)
        except Exception:
            logger.exception("cnnviz: internal error serving %s", request.path)
            return http_util.Respond(request, {"error": "internal error (see the server log)"}, "application/json", code=500)
        return result if isinstance(result, wrappers.Response) else http_util.Respond(request, result, "application/json")

    route.__name__ = handler.__name__
    return wrappers.Request.application(route)
