"""Logging: one configuration for everything the process logs, as JSON lines or as text.

``configure_logging(format, level)`` sets up the root logger once per process: our ``syncledger``
logger, uvicorn's, simple-salesforce's and Python's warnings all go through one handler on
stderr. JSON (python-json-logger) is the default when stderr is not a terminal, so a log
collector gets one object per line; text is the default on a terminal. Every record carries
``time``, ``level``, ``logger`` and ``message``, plus whatever the call passed in ``extra``
(``request_id``, ``duration_ms``, counts …). Messages are redacted (:func:`redact`) on the way
out, so a secret that slipped into a message (a database URL's password, a bearer token) never
reaches the log.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any, Literal, TextIO

from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["json", "text"]

#: The logger every part of syncledger logs to (children: ``syncledger.http`` …).
LOGGER = "syncledger"

#: Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}

_SECRETS = (
    # scheme://user:password@host → scheme://user:***@host
    (re.compile(r"(?P<keep>\b[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+(?=@)", re.I), r"\g<keep>***"),
    # Authorization: Bearer …, Bearer tokens in text
    (re.compile(r"(?P<keep>\bBearer\s+)[A-Za-z0-9._~+/=!-]+", re.I), r"\g<keep>***"),
    # key=value pairs whose key names a secret
    (
        re.compile(
            r"(?P<keep>\b(?:password|passwd|secret|token|session_id|sid|client_secret|"
            r"consumer_secret|private_key|api_key)\b\s*[=:]\s*)(?P<q>['\"]?)[^\s'\",;&]+",
            re.I,
        ),
        r"\g<keep>\g<q>***",
    ),
    # PEM blocks
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
        "-----PRIVATE KEY REDACTED-----",
    ),
)


def redact(text: str) -> str:
    """``text`` with passwords in URLs, bearer tokens, ``secret=…`` values and private keys
    masked."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class _Redacting(logging.Formatter):
    """Redacts whatever ``inner`` wrote (the message, its fields and any stack)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


class _Text(logging.Formatter):
    """``2026-12-02T16:20:01.123Z INFO syncledger cycle done key=value …``"""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self.default_time_format = "%Y-%m-%dT%H:%M:%S"
        self.default_msec_format = "%s.%03dZ"
        self.converter = _utc

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = _extra(record)
        if not extra:
            return line
        head, sep, tail = line.partition("\n")  # fields stay on the message's line
        fields = " ".join(f"{k}={_text_value(v)}" for k, v in extra.items())
        return f"{head} {fields}{sep}{tail}"


def _utc(seconds: float | None) -> time.struct_time:
    return time.gmtime(seconds)


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and k[0] != "_"}


def _text_value(value: Any) -> str:
    text = str(value)
    return f'"{text}"' if (" " in text or not text) else text


def _json() -> logging.Formatter:
    return JsonFormatter(
        "{asctime}{levelname}{name}{message}",
        style="{",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
        json_ensure_ascii=False,
    )


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (it may be replaced, as tests do)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def default_format(stream: TextIO | None = None) -> LogFormat:
    """JSON unless ``stream`` (stderr) is a terminal."""
    stream = stream or sys.stderr
    return "text" if stream.isatty() else "json"


def configure_logging(
    log_format: LogFormat | None = None,
    level: str = "INFO",
    *,
    stream: TextIO | None = None,
) -> None:
    """Send every log record of the process to ``stream`` (stderr) in ``log_format`` (default:
    :func:`default_format`) from ``level`` up. Calling it again replaces the configuration."""
    handler: logging.StreamHandler[TextIO] = (
        logging.StreamHandler(stream) if stream is not None else _Stderr()
    )
    inner = _json() if (log_format or default_format(stream)) == "json" else _Text()
    handler.setFormatter(_Redacting(inner))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_syncledger", False)]:
        root.removeHandler(old)
    handler._syncledger = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's loggers (and any library's) reach the same handler through the root logger
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        named = logging.getLogger(name)
        named.handlers.clear()
        named.setLevel(logging.NOTSET)  # SYNCLEDGER_LOG_LEVEL decides, not an earlier config
        named.propagate = True
    logging.captureWarnings(True)


#: uvicorn's ``log_config``: none of its own handlers; its records propagate to ours.
UVICORN_LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {
        "uvicorn": {"propagate": True},
        "uvicorn.error": {"propagate": True},
        "uvicorn.access": {"propagate": True},
    },
}
