"""structlog JSON lines on stdout, one per event, redacted."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, MutableMapping
from typing import Any

import structlog

from bot.core.redact import redact_any


def _redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return redact_any(event_dict)


def _json_line(event_dict: dict[str, Any], **options: Any) -> str:
    """The JSON line, writable to any UTF-8 stream: a lone surrogate (from a client's JSON \\ud800) is
    written as its escape instead of making the write raise."""
    line = json.dumps(event_dict, **options)
    try:
        line.encode()
    except UnicodeEncodeError:
        line = line.encode(errors="backslashreplace").decode()
    return line


def _never_raising(wrapper_class: type) -> type:
    """A logger whose calls never raise: a log line is never worth the request, task or loop that wrote
    it. What cannot be logged is replaced by a line that says so."""

    class NeverRaisingLogger(wrapper_class):
        def _proxy_to_logger(self, method_name: str, event: str | None = None, **event_kw: object) -> object:
            try:
                return super()._proxy_to_logger(method_name, event, **event_kw)
            except Exception as exc:
                _log_failed(self._logger, method_name, event, exc)
                return None

    return NeverRaisingLogger


def _log_failed(logger: Any, level: str, event: object, exc: Exception) -> None:
    named = event if isinstance(event, str) and event.isidentifier() else None  # nothing of the payload
    line = json.dumps({"level": level, "event": "log_failed", "failed_event": named, "error": type(exc).__name__})
    try:
        logger.msg(line)
    except Exception:
        pass  # the stream itself is gone: nothing left to tell


class _CurrentStream:
    """Writes to whatever sys.stdout / sys.stderr is at the time (test capture swaps them)."""

    def __init__(self, name: str):
        self.name = name

    def write(self, text: str) -> int:
        return getattr(sys, self.name).write(text)

    def flush(self) -> None:
        getattr(sys, self.name).flush()


class RateLimitedWarning:
    """A warning for something that may happen on every request (a forged or malformed request):
    at most one line per `every` seconds, saying how many happened since the last one, and why."""

    def __init__(self, event: str, every: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.event = event
        self.every = every
        self.clock = clock
        self._reasons: Counter[str] = Counter()
        self._last: float | None = None

    def __call__(self, reason: str, **fields: object) -> None:
        self._reasons[reason] += 1
        now = self.clock()
        if self._last is not None and now - self._last < self.every:
            return
        log.warning(
            self.event,
            count=sum(self._reasons.values()),
            reasons=dict(self._reasons),
            window_s=self.every,
            **fields,
        )
        self._reasons.clear()
        self._last = now


MALFORMED_HTTP = RateLimitedWarning("http_requests_malformed")


class _ClientProtocolErrors(logging.Filter):
    """aiohttp logs a request it cannot parse (bad encoding, bad framing) as an error with a
    traceback; it is the client's fault and already answered 4xx: a rate-limited warning instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 0) < 500:
            MALFORMED_HTTP(type(exc).__name__)
            return False
        return True


def configure_logging(level: str = "info", stream: Any = None) -> None:
    """JSON lines to stdout (or `stream`, e.g. sys.stderr for the terminal modes)."""
    stream = (
        _CurrentStream("stderr" if stream is sys.stderr else "stdout")
        if stream in (None, sys.stdout, sys.stderr)
        else stream
    )
    numeric = getattr(logging, level.upper(), logging.INFO)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact,
            structlog.processors.JSONRenderer(_json_line, ensure_ascii=False),
        ],
        wrapper_class=_never_raising(structlog.make_filtering_bound_logger(numeric)),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    # libraries (bolt, slack_sdk, aiohttp) log through stdlib: same stream, same redaction, warnings and up
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _redact,
                structlog.processors.JSONRenderer(_json_line),
            ],
            foreign_pre_chain=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _ClientProtocolErrors) for f in server.filters):
        server.addFilter(_ClientProtocolErrors())


log = structlog.get_logger("erpgo")
