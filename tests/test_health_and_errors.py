import os
import subprocess
import sys
import time

import pytest

from elife import create_app


def test_health_up(client):
    r = client.get("/health")
    assert r.status_code == 200
    assert r.get_json() == {"status": "ok", "database": "up", "operator": "up", "wechat": "open-api"}


def test_health_503_when_database_unreachable(settings_env, free_closed_port):
    app = create_app({**settings_env, "DB_MAX_RETRIES": "1", "DB_RETRY_DELAY": "0",
                      "DATABASE_URL": f"mysql+pymysql://root@127.0.0.1:{free_closed_port}/elife"})
    started = time.monotonic()
    r = app.test_client().get("/health")
    assert r.status_code == 503
    assert r.get_json()["database"] == "down"
    assert time.monotonic() - started < 2


@pytest.fixture
def free_closed_port():
    from conftest import free_port
    return free_port()  # nothing listens there


def test_a_worker_logs_database_connected_once_at_start(settings_env, migrated, tmp_path):
    """What a gunicorn worker does at start: import wsgi. The runbook greps its log for
    数据库连接成功."""
    from conftest import REPO
    env = {k: v for k, v in os.environ.items() if k != "FLASK_RUN_FROM_CLI"}
    env.update({**settings_env, "LOG_DIR": str(tmp_path)})
    r = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "combined.log").read_text(encoding="utf-8")
    assert text.count("event=database_connected") == 1 and "数据库连接成功" in text


def test_unknown_path_is_json_404(client):
    r = client.get("/nope")
    assert r.status_code == 404
    assert r.get_json()["error"]["code"] == "not_found"


def test_wrong_method_is_json_405(client):
    r = client.delete("/health")
    assert r.status_code == 405
    assert r.get_json()["error"]["code"] == "method_not_allowed"
    assert "GET" in r.headers["Allow"]


@pytest.mark.parametrize("body", [b"{not json", b"[1,2]", b'"a string"', b"", b"\xff\xfe"])
def test_bad_json_bodies_are_400(client, body):
    r = client.post("/auth/login", data=body, content_type="application/json")
    assert r.status_code == 400
    assert r.get_json()["error"]["code"] in ("malformed_json", "body_not_object", "missing_body")


def test_oversized_body_is_json_413(client):
    r = client.post("/auth/login", data=b"x" * (65 * 1024), content_type="application/json")
    assert r.status_code == 413
    assert r.get_json()["error"]["code"] == "body_too_large"


def test_errors_never_leak_a_stack_trace(make_app, sandbox):
    app = make_app()

    @app.get("/_boom")
    def boom():
        raise RuntimeError("secret detail")

    r = app.test_client().get("/_boom")
    assert r.status_code == 500
    assert r.get_json()["error"]["code"] == "internal_error"
    assert b"secret detail" not in r.data and b"Traceback" not in r.data
