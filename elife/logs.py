"""Logging: one line per event to stdout, logs/combined.log and (errors) logs/error.log.

Line format: `2026-01-18T10:00:00.123Z INFO elife.recharge event=claim_won order=ORD.. message`.
Every decision is logged through `event()` with a stable key, so `grep event=amount_mismatch`
works, and the seed's Chinese phrases ride along in the message for its runbook greps.

Values often come from callers (a URL path, a field of a notice), so each goes through
`escape()`: one line, printable, and no `=` of its own -- a line's keys are ours alone,
and its own `event=` is its first.
"""
import logging
import os
import re
import sys
import time
from logging.handlers import WatchedFileHandler

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "warning": logging.WARNING, "error": logging.ERROR}


class _Formatter(logging.Formatter):
    converter = time.gmtime

    def format(self, record):
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        ms = int(record.msecs)
        line = f"{ts}.{ms:03d}Z {record.levelname} {record.name} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(level_name="info", log_dir="logs"):
    level = LEVELS.get(str(level_name).lower(), logging.INFO)
    root = logging.getLogger("elife")
    for h in list(root.handlers):
        if getattr(h, "_elife", False):
            root.removeHandler(h)
            h.close()
    fmt = _Formatter()
    # Under `flask ...` commands stdout is the command's output (report --json is piped
    # into other tools), so the console copy of the log goes to stderr there.
    console = sys.stderr if os.environ.get("FLASK_RUN_FROM_CLI") == "true" else sys.stdout
    handlers = [logging.StreamHandler(console)]
    if log_dir:
        os.makedirs(log_dir, exist_ok=True)
        handlers.append(WatchedFileHandler(os.path.join(log_dir, "combined.log"), encoding="utf-8"))
        err = WatchedFileHandler(os.path.join(log_dir, "error.log"), encoding="utf-8")
        err.setLevel(logging.ERROR)
        handlers.append(err)
    for h in handlers:
        h._elife = True
        h.setFormatter(fmt)
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
