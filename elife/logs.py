"""Logging: one line per event to stdout, logs/combined.log and (errors) logs/error.log
(LOG_DIR=-: stdout only, as in the container).

Line format: `2026-01-18T10:00:00.123Z INFO elife.recharge event=claim_won order=ORD.. message req=<id>`.
Every decision is logged through `event()` with a stable key, so `grep event=amount_mismatch`
works, and the seed's Chinese phrases ride along in the message for its runbook greps.
A line written while an HTTP request is handled ends with `req=<its X-Request-Id>`.

LOG_FORMAT=json writes the same events as one JSON object per line, for log shippers:
{"time", "level", "logger", "event", "order", <the other fields>, "message", "req"}.

Values often come from callers (a URL path, a field of a notice), so each goes through
`escape()`: one line, printable, and no `=` of its own -- a line's keys are ours alone,
and its own `event=` is its first.
"""
import contextvars
import json
import logging
import os
import re
import sys
import time
from logging.handlers import WatchedFileHandler

# The X-Request-Id of the request being handled (None outside one). A contextvar, not
# flask.g: audit rows and log lines are written from modules that know nothing of HTTP.
_request_id = contextvars.ContextVar("elife_request_id", default=None)


def current_request_id():
    return _request_id.get()


def set_request_id(value):
    _request_id.set(value)


class _RequestIdFilter(logging.Filter):
    """Puts the current request id on every record our handlers write."""

    def filter(self, record):
        if not hasattr(record, "request_id"):
            record.request_id = _request_id.get()
        return True

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "warning": logging.WARNING, "error": logging.ERROR}


class _Formatter(logging.Formatter):
    converter = time.gmtime

    def format(self, record):
        line = f"{_timestamp(record)} {record.levelname} {record.name} {record.getMessage()}"
        if getattr(record, "request_id", None):
            line += f" req={record.request_id}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _timestamp(record):
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{ts}.{int(record.msecs):03d}Z"


# `key=value` at the start of a message, the value bare or "quoted with \" escapes".
_FIELD = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)(?:\s+|$)')
_RESERVED = ("time", "level", "logger", "message", "req", "exc")


def fields_of(message):
    """('event=x order=y k="a b" free text') -> ({'event': 'x', 'order': 'y', 'k': 'a b'},
    'free text'): the keys of the text line, for the JSON one."""
    out, pos = {}, 0
    while True:
        m = _FIELD.match(message, pos)
        if not m:
            break
        k, v = m.group(1), m.group(2)
        if v.startswith('"') and len(v) >= 2 and v.endswith('"'):
            try:
                v = json.loads(v)
            except ValueError:
                v = v[1:-1]
        out[f"field_{k}" if k in _RESERVED or k in out else k] = v
        pos = m.end()
    return out, message[pos:].strip()


class _JsonFormatter(logging.Formatter):
    """One JSON object per line, with the keys of the text line."""

    def format(self, record):
        fields, rest = fields_of(record.getMessage())
        obj = {"time": _timestamp(record), "level": record.levelname, "logger": record.name, **fields}
        if rest:
            obj["message"] = rest
        if getattr(record, "request_id", None):
            obj["req"] = record.request_id
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        return json.dumps(obj, ensure_ascii=False, default=str)


FORMATS = ("text", "json")


def setup_logging(level_name="info", log_dir="logs", log_format="text"):
    level = LEVELS.get(str(level_name).lower(), logging.INFO)
    root = logging.getLogger("elife")
    for h in list(root.handlers):
        if getattr(h, "_elife", False):
            root.removeHandler(h)
            h.close()
    fmt = _JsonFormatter() if log_format == "json" else _Formatter()
    with_request_id = _RequestIdFilter()
    # Under `flask ...` commands stdout is the command's output (report --json is piped
    # into other tools), so the console copy of the log goes to stderr there.
    console = sys.stderr if os.environ.get("FLASK_RUN_FROM_CLI") == "true" else sys.stdout
    handlers = [logging.StreamHandler(console)]
    if log_dir and log_dir != "-":  # "-": the console only (a container's platform collects it)
        os.makedirs(log_dir, exist_ok=True)
        handlers.append(WatchedFileHandler(os.path.join(log_dir, "combined.log"), encoding="utf-8"))
        err = WatchedFileHandler(os.path.join(log_dir, "error.log"), encoding="utf-8")
        err.setLevel(logging.ERROR)
        handlers.append(err)
    for h in handlers:
        h._elife = True
        h.setFormatter(fmt)
        h.addFilter(with_request_id)
        root.addHandler(h)
    root.setLevel(level)
    root.propagate = False
    return root


_PLAIN = re.compile(r'[^\s"\\=]+')  # printable is checked separately
_ESCAPES = {"\\": "\\\\", '"': '\\"', "=": "\\x3d", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(value):
    """A value as it may stand in a log line: newlines, control and other unprintable
    characters, backslashes, quotes and `=` written as escapes (`\\n`, `\\x1b`, `\\u2028`,
    `\\x3d`), and the whole quoted when it holds a space or is empty."""
    s = value if isinstance(value, str) else str(value)
    if _PLAIN.fullmatch(s) and s.isprintable():
        return s
    out = "".join(_ESCAPES.get(c) or (c if c.isprintable() else _hex(c)) for c in s)
    return f'"{out}"' if " " in s or not s else out


def short(value):
    """A received value as it may stand in a log field: one line, printable, 64 characters
    at most (anyone's input: a notice's fields, a URL's order number)."""
    s = repr(value) if not isinstance(value, str) else value
    if not s.isprintable():
        s = s.encode("unicode_escape").decode("ascii")
    return s[:64]


def _hex(c):
    o = ord(c)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


def event(logger, level, key, message="", order=None, **fields):
    """Log one decision: `event=<key> order=<n> k=v ... message`, every value escaped."""
    parts = [f"event={key}"]
    if order:
        parts.append(f"order={escape(order)}")
    parts.extend(f"{k}={escape(v)}" for k, v in fields.items())
    if message:  # ours, but it may carry an exception's text: one line all the same
        parts.append("".join(c if c.isprintable() else _hex(c) for c in message))
    logger.log(level, " ".join(parts))
