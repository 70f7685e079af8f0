"""Log lines on stderr: JSON (default) or text; mitmproxy's own lines re-levelled and cut.

Never a secret, a signature, an Authorization value or a body: request logs
carry only the fields named in SPEC §5, and mitmproxy's messages, which can
quote raw request heads, are cut before any quoted bytes.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import re
import sys
import time
import traceback
from typing import Any

logger = logging.getLogger("sigwarden")
_QUOTED_BYTES = re.compile(r"""\bb['"]""")
_ENCODE = json.JSONEncoder(default=str).encode  # one encoder: json.dumps(default=…) builds one per call
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """One structured line: `event` plus fields (plain values only)."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={"sigwarden_fields": fields})


class LineFormatter(logging.Formatter):
    """One line from (time, level, event, fields): the same for log records and for `log_line`."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "sigwarden_fields", {})
        return self.line(record.created, record.levelname.lower(), record.getMessage(), fields)

    def line(self, created: float, level: str, event: str, fields: dict[str, Any]) -> str:
        raise NotImplementedError


class JsonFormatter(LineFormatter):
    def line(self, created: float, level: str, event: str, fields: dict[str, Any]) -> str:
        line: dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": level,
            "event": event,
        }
        line.update(fields)
        return _ENCODE(line)


class TextFormatter(LineFormatter):
    def line(self, created: float, level: str, event: str, fields: dict[str, Any]) -> str:
        when = datetime.datetime.fromtimestamp(created, datetime.UTC).strftime("%H:%M:%S")
        text = " ".join(f"{key}={value}" for key, value in fields.items())
        return f"{when} {level:7} {event} {text}".rstrip()


_LEVEL_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning", logging.ERROR: "error"}


def log_line(event: str, level: int, fields: dict[str, Any]) -> None:
    """`log_event` for the per-request line: the same output without the logging module's per-record
    work (a LogRecord, the caller's frame), which cost more than the rest of a request's handling."""
    handler = logger.handlers[0] if logger.handlers else None
    formatter = handler.formatter if handler is not None else None
    if not isinstance(handler, logging.StreamHandler) or not isinstance(formatter, LineFormatter):
        log_event(event, level, **fields)
        return
    if logger.isEnabledFor(level):
        text = formatter.line(time.time(), _LEVEL_NAMES.get(level, "info"), event, fields)
        with handler.lock or contextlib.nullcontext():
            handler.stream.write(text + "\n")
            handler.stream.flush()


def sanitise(message: str) -> str:
    """mitmproxy's message without anything it quotes from the wire."""
    cut = _QUOTED_BYTES.search(message)
    text = message[: cut.start()] + "[…]" if cut else message
    return text[:300]


class MitmproxyHandler(logging.Handler):
    """Carries mitmproxy's records into sigwarden's log: info and below as debug, cut."""

    def emit(self, record: logging.LogRecord) -> None:
        level = record.levelno if record.levelno >= logging.WARNING else logging.DEBUG
        try:
            message = sanitise(record.getMessage())
        except Exception:  # a malformed record must not break logging
            message = "unprintable mitmproxy log record"
        fields: dict[str, Any] = {"logger": record.name, "message": message}
        if record.exc_info and record.exc_info[1] is not None:
            # The exception's type and where it happened; its text may quote request data.
            fields["exception"] = type(record.exc_info[1]).__name__
            frames = traceback.extract_tb(record.exc_info[2])[-4:]
            fields["where"] = [f"{frame.filename.rsplit('/', 2)[-1]}:{frame.lineno} {frame.name}" for frame in frames]
        log_event("mitmproxy", level, **fields)


def configure_logging(log_format: str = "json", log_level: str = "info", stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(_LEVELS[log_level])
    logger.propagate = False
    mitmproxy_logger = logging.getLogger("mitmproxy")
    mitmproxy_logger.handlers[:] = [MitmproxyHandler()]
    mitmproxy_logger.setLevel(logging.DEBUG if log_level == "debug" else logging.WARNING)
    mitmproxy_logger.propagate = False
