"""Logging setup: JSON lines under systemd/journald, readable console output on a terminal."""

from __future__ import annotations

import logging
import os
import sys

import structlog


def setup_logging(level: int = logging.INFO) -> None:
    under_journal = "JOURNAL_STREAM" in os.environ or "INVOCATION_ID" in os.environ
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if under_journal or not sys.stderr.isatty()
        else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # aiomqtt/paho log a warning per publish on these loggers unless told otherwise.
    logging.getLogger("mqtt").setLevel(logging.ERROR)
