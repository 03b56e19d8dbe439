"""structlog JSON lines on stdout, one per event, redacted."""

from __future__ import annotations

import logging
import sys

import structlog

from bot.core.redact import redact_any


def _redact(_logger, _method, event_dict):
    return redact_any(event_dict)


class _CurrentStream:
    """Writes to whatever sys.stdout / sys.stderr is at the time (test capture swaps them)."""

    def __init__(self, name: str):
        self.name = name

    def write(self, text: str) -> int:
        return getattr(sys, self.name).write(text)

    def flush(self) -> None:
        getattr(sys, self.name).flush()


def configure_logging(level: str = "info", stream=None) -> None:
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
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
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
                structlog.processors.JSONRenderer(),
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


log = structlog.get_logger("erpgo")
