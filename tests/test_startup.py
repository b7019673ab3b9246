"""Start-up never pretends: a service that cannot run says why, in one line, and exits
non-zero -- it is never left looking 'online' to PM2, systemd or whoever ran it."""
import os
import subprocess
import sys

from conftest import REPO, free_port

PRODUCTION = {  # every required setting but UNITEL_PASSWORD
    "ELIFE_ENV": "production", "SECRET_KEY": "k", "ADMIN_TOKEN": "a", "WECHAT_APPID": "wx",
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
