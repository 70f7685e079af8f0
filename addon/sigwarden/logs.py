"""Log lines on stderr: JSON (default) or text; mitmproxy's own lines re-levelled and cut.

Never a secret, a signature, an Authorization value or a body: request logs
carry only the fields named in SPEC §5, and mitmproxy's messages, which can
quote raw request heads, are cut before any quoted bytes.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import sys
import traceback
from typing import Any

logger = logging.getLogger("sigwarden")
_QUOTED_BYTES = re.compile(r"""\bb['"]""")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """One structured line: `event` plus fields (plain values only)."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={"sigwarden_fields": fields})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        line.update(getattr(record, "sigwarden_fields", {}))
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.datetime.fromtimestamp(record.created, datetime.UTC).strftime("%H:%M:%S")
        fields = " ".join(f"{key}={value}" for key, value in getattr(record, "sigwarden_fields", {}).items())
        return f"{when} {record.levelname.lower():7} {record.getMessage()} {fields}".rstrip()


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
