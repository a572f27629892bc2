"""structlog configuration: JSON lines (console renderer on a TTY), request ids, no secrets."""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from switchboard.settings import Settings

# Keys whose values are never logged, wherever they appear in an event.
_SECRET_KEY = re.compile(
    r"(authorization|token|secret|password|api[_-]?key|cookie|credential)", re.IGNORECASE
)
# Bearer tokens or key-like values inside free text (e.g. an exception message).
_SECRET_TEXT = re.compile(
    r"(?i)(bearer\s+|(?:token|secret|key|password)[\"']?\s*[:=]\s*[\"']?)"
    r"([A-Za-z0-9._~+/=-]{6,})"
)
MASK = "***"
_PLAIN = frozenset({int, float, bool, type(None)})


def _may_hold_secret(text: str) -> bool:
    """Every match of _SECRET_TEXT contains one of these words: a text without any is clean,
    and checking that is several times cheaper than the expression (a log line per request)."""
    low = text.lower()
    return "bearer" in low or "token" in low or "secret" in low or "key" in low or "password" in low


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        if not _may_hold_secret(value):
            return value
        return _SECRET_TEXT.sub(lambda m: m.group(1) + MASK, value)
    if isinstance(value, dict):
        return {
            k: MASK if isinstance(k, str) and _SECRET_KEY.search(k) else _redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


@functools.lru_cache(maxsize=1024)
def _secret_event_key(key: str) -> bool:
    """Whether a top-level event key names a secret (the keys are few: cached)."""
    return key not in ("event", "request_id") and _SECRET_KEY.search(key) is not None


def redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask secret-looking keys and bearer tokens in text."""
    for key, value in event.items():
        if _secret_event_key(key):
            event[key] = MASK
        elif type(value) not in _PLAIN:
            event[key] = _redact(value)
    return event


class _StderrLogger:
    """Writes each line to whatever ``sys.stderr`` is at that moment (it can be replaced, e.g.
    by a test runner capturing output, after logging was configured)."""

    def __init__(self, *_: Any) -> None:
        pass

    def msg(self, message: str) -> None:
        sys.stderr.write(message + "\n")

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def configure_logging(settings: Settings, *, verbose: bool = False) -> None:
    """Route every log through structlog. Without ``verbose``, uvicorn's start-up lines (one set
    per server: the hub and each simulator) and httpx's own line per request (the outbound layer
    logs each call itself) are left out."""
    level = getattr(logging, settings.log_level.upper())
    fmt = settings.log_format
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if fmt == "console" else structlog.processors.JSONRenderer()
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_StderrLogger,
        cache_logger_on_first_use=True,
    )
    # Route stdlib logging (uvicorn, alembic, sqlalchemy) through the same renderer.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                redact_secrets,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "alembic"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = not verbose  # we log requests ourselves
    logging.getLogger("alembic").setLevel(logging.WARNING)
    quiet = logging.NOTSET if verbose else logging.WARNING
    for name in ("uvicorn.error", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(quiet)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
