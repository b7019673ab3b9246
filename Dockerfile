# The eLife service as WeChat Cloud Hosting builds and runs it (its settings beside this
# file, in container.config.json; README "Where it runs"). tests/test_container.py runs
# this file's CMD with its ENV, without Docker; scripts/run-container does so by hand.
FROM python:3.11-slim-bookworm

# No .pyc written at run time (the code is root's, read-only to the service; it is
# compiled below); Python's output unbuffered, straight to Cloud Hosting's log.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The pinned requirements in a layer of their own, so a change of code alone reuses it.
# Only what the service runs: the lines above "# Tests" in requirements.txt.
COPY requirements.txt ./
RUN sed '/^# Tests/,$d' requirements.txt > /tmp/runtime.txt \
 && pip install --no-cache-dir -r /tmp/runtime.txt \
 && rm /tmp/runtime.txt

# Port 80 as a user who is not root: the one capability that needs, on the interpreter
# (Docker lets any user bind 80; Kubernetes, beneath Cloud Hosting, does not by default).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcap2-bin \
 && setcap cap_net_bind_service=+ep "$(readlink -f /usr/local/bin/python3)" \
 && apt-get purge -y libcap2-bin \
 && rm -rf /var/lib/apt/lists/*

COPY . .
# instance/ holds what the service writes (the workers' metric files), nothing else.
RUN python -m compileall -q elife migrations wsgi.py gunicorn.conf.py \
 && groupadd --system --gid 10001 elife \
 && useradd --system --uid 10001 --gid elife --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin elife \
 && mkdir -p instance \
 && chown elife:elife instance
# By number: a platform that checks "not root" before it starts the image can read it.
USER 10001:10001

# Production unless told otherwise: a container missing a setting refuses to start and
# names it. Every log line to stdout/stderr (LOG_DIR=-: no log files); two workers per
# instance (Cloud Hosting adds instances, and cpu_count() sees the host's cores); no
# gunicorn control socket (nothing manages an instance from inside it).
ENV ELIFE_ENV=production \
    HOST=0.0.0.0 \
    PORT=80 \
    LOG_DIR=- \
    WEB_CONCURRENCY=2 \
    GUNICORN_CMD_ARGS=--no-control-socket
EXPOSE 80
# sh, not the script itself: an upload that loses its executable bit still starts.
CMD ["/bin/sh", "deploy/container-start"]
