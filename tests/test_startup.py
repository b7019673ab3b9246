"""Start-up never pretends: a service that cannot run says why, in one line, and exits
non-zero -- it is never left looking 'online' to PM2, systemd or whoever ran it."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from conftest import REPO, free_port

PRODUCTION = {  # every required setting but UNITEL_PASSWORD
    "ELIFE_ENV": "production", "SECRET_KEY": "k" * 32, "ADMIN_TOKEN": "a" * 32, "WECHAT_APPID": "wx",
    "WECHAT_MCH_ID": "1", "WECHAT_ENV_ID": "e", "UNITEL_API_URL": "http://127.0.0.1:9/unitel",
    "UNITEL_USERNAME": "u",
}


def _clean_env(tmp_path, **settings):
    """Only what a server's environment would hold: nothing inherited from the test run."""
    return {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONUNBUFFERED": "1",
            "LOG_DIR": str(tmp_path / "logs"), "DATABASE_URL": f"sqlite:///{tmp_path / 'elife.db'}",
            "PORT": str(free_port()), "GUNICORN_ACCESS_LOG": "", **settings}


def _gunicorn(args, env, timeout=10):
    return subprocess.run([sys.executable, "-m", "gunicorn", "wsgi:app", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_gunicorn_with_a_setting_missing_exits_at_once_naming_it(tmp_path):
    r = _gunicorn(["-c", "gunicorn.conf.py"], _clean_env(tmp_path, **PRODUCTION))
    assert r.returncode == 3, r.stderr
    assert "elife: cannot start: missing required settings: UNITEL_PASSWORD" in r.stderr.splitlines()
    assert "Traceback" not in r.stderr and "Booting worker" not in r.stderr


def test_a_worker_that_cannot_start_stops_gunicorn_instead_of_respawning(tmp_path):
    """Without our gunicorn.conf.py (nothing checks the settings in the master) the
    worker's failure stops the master: no respawning forever. (The master exits 3, or 1
    when both workers fail at once: gunicorn 27 then trips over its own HaltServer.)"""
    env = _clean_env(tmp_path, **PRODUCTION)
    plain = tmp_path / "plain.conf.py"
    plain.write_text(f"bind = '127.0.0.1:{env['PORT']}'\nworkers = 2\n")
    r = _gunicorn(["-c", str(plain)], env)
    assert r.returncode != 0, r.stderr
    assert "elife: cannot start: missing required settings: UNITEL_PASSWORD" in r.stderr.splitlines()
    assert "Worker failed to boot" in r.stderr


# -- scripts/run ---------------------------------------------------------------------------

def _run_env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if k != "FLASK_RUN_FROM_CLI"}
    env.update({"ELIFE_ENV": "development", "PORT": str(free_port()), "SANDBOX_PORT": str(free_port()),
                "DATABASE_URL": f"sqlite:///{tmp_path / 'elife.db'}", "LOG_DIR": str(tmp_path / "logs"),
                "SANDBOX_SERVICE_URL": "", "SANDBOX_STATE_FILE": str(tmp_path / "sandbox.json"),
                "GUNICORN_ACCESS_LOG": "", "WEB_CONCURRENCY": "1", **extra})
    return env


def _scripts_run(env, timeout=90):
    return subprocess.run([str(REPO / "scripts" / "run")], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _answers(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("name", ["PORT", "SANDBOX_PORT"])
def test_run_refuses_a_port_in_use_and_names_it(tmp_path, name):
    with socket.socket() as other:  # another instance, listening
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        env = _run_env(tmp_path, **{name: str(port)})
        r = _scripts_run(env, timeout=60)
    assert r.returncode != 0
    assert (f"scripts/run: port {port} ({name}) is already in use; stop the other instance or set {name}"
            in r.stderr.splitlines())
    assert "eLife is running" not in r.stdout
    assert not (tmp_path / "elife.db").exists()  # refused before migrating anything


def test_run_says_so_when_gunicorn_exits_during_start_up(tmp_path):
    env = _run_env(tmp_path, WEB_CONCURRENCY="many")  # gunicorn cannot read its config
    r = _scripts_run(env)
    assert r.returncode != 0
    assert "scripts/run: gunicorn exited during start-up (exit code 1); see its output above" in r.stderr
    assert "eLife is running" not in r.stdout
    assert not _answers(int(env["SANDBOX_PORT"]))  # the sandbox it started is stopped too


def test_run_says_running_once_both_answer_and_stops_both(tmp_path):
    env = _run_env(tmp_path)
    proc = subprocess.Popen([str(REPO / "scripts" / "run")], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        for line in proc.stdout:
            if "eLife is running" in line or time.monotonic() > deadline:
                break
        assert "eLife is running" in line
        assert requests.get(f"http://127.0.0.1:{env['PORT']}/health", timeout=5).json()["status"] == "ok"
        assert requests.get(f"http://127.0.0.1:{env['SANDBOX_PORT']}/_health", timeout=5).ok
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert not _answers(int(env["PORT"])) and not _answers(int(env["SANDBOX_PORT"]))
