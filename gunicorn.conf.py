"""gunicorn settings, read by `gunicorn wsgi:app` from the repo root.

The bind port comes from the same settings as everything else (PORT in the
environment or .env), so scripts/run, PM2 and systemd all agree.
"""
import os

from elife.config import load_settings

_s = load_settings()
bind = f"{os.environ.get('HOST', '127.0.0.1')}:{_s.PORT}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
# Longer than the longest request (a callback: WeChat query + operator submit < 5 s).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = "-"
