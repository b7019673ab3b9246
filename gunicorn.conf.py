"""gunicorn settings, read by `gunicorn wsgi:app -c gunicorn.conf.py` from the repo root.

The bind port comes from the same settings as everything else (PORT in the environment
or .env), so scripts/run, PM2 and systemd all agree. Defaults suit 2 cores.
"""
import multiprocessing
import os

from elife.config import load_settings

_s = load_settings()
bind = f"{os.environ.get('HOST', '127.0.0.1')}:{_s.PORT}"
# Requests mostly wait on the database and on WeChat/Unitel: a few sync workers per core.
workers = int(os.environ.get("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 5)))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
# Longer than the longest request: a callback is WeChat's query plus one operator submit,
# (WECHAT_TIMEOUT + UNITEL_CONNECT_TIMEOUT + UNITEL_READ_TIMEOUT) < 5 s; 30 s leaves room.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# On SIGTERM, finish requests in flight (an operator call among them) before exiting.
graceful_timeout = 20
keepalive = 5
# Recycle workers now and then so a slow leak never grows without bound.
max_requests = 5000
max_requests_jitter = 500
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None  # empty: no access log
errorlog = "-"
