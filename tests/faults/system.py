"""The real processes the suite drives: the sandbox, the service under gunicorn, sweeps,
and MariaDB itself; and what /proc tells about them."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
AVOID_PORTS = {3000, 3001, 3306}
# Every child gets SIGTERM when the thread that started it dies, however the suite dies
# (util-linux setpriv; a preexec_fn would not be safe with the suite's many threads).
DIE_WITH_PARENT = ["setpriv", "--pdeathsig", "TERM", "--"] if shutil.which("setpriv") else []
PYTHON = [*DIE_WITH_PARENT, sys.executable]


def free_port():
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in AVOID_PORTS:
            return port


def wait_http(url, timeout, proc=None, ok=(200,)):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {proc.returncode}")
        try:
            r = requests.get(url, timeout=2)
            if r.status_code in ok:
                return
            last = f"HTTP {r.status_code}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s ({last})")


def spawn(args, env, log_path, **kw):
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(args, cwd=REPO, env=env, stdout=kw.pop("stdout", log), stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, **kw)
    finally:
        log.close()


def stop(proc, grace=10):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def flask(args, env, log_path, timeout):
    """Run `flask <args>` to the end; returns (returncode, stdout)."""
    with open(log_path, "ab") as log:
        p = subprocess.run([*PYTHON, "-m", "flask", *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                           stderr=log, stdin=subprocess.DEVNULL, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


# -- /proc -------------------------------------------------------------------------------

def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may hold spaces and parentheses
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(d))
    return out


def pids_named(name):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/comm") as f:
                    if f.read().strip() == name:
                        out.append(int(d))
            except OSError:
                pass
    return out


def socket_owner(local_port, remote_port, candidates):
    """The pid among `candidates` holding the TCP socket 127.0.0.1:local_port -> :remote_port."""
    inode = None
    want_local, want_remote = f"0100007F:{local_port:04X}", f"0100007F:{remote_port:04X}"
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[1] == want_local and parts[2] == want_remote:
                inode = parts[9]
                break
    if inode is None or inode == "0":
        return None
    link = f"socket:[{inode}]"
    for pid in candidates:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == link:
                        return pid
                except OSError:
                    continue
        except OSError:
            continue
    return None


# -- MariaDB -----------------------------------------------------------------------------

MARIADBD = "/usr/sbin/mariadbd"


def mariadb_ping(timeout=2):
    try:
        return subprocess.run(["mariadb-admin", "-uroot", "-h127.0.0.1", "--connect-timeout=1", "ping"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def mariadb_start(wait=60):
    """Start mariadbd if it is not running, and wait until it answers."""
    subprocess.run(["start-stop-daemon", "--start", "--oknodo", "--background", "--exec", MARIADBD],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if mariadb_ping():
            return True
        time.sleep(0.1)
    return False


class MariaDBRestart:
    """Stop MariaDB and start it again; always started again, even on an exception.

    A marker file (ELIFE_FAULTS_DB_MARKER) exists while it is down by our hand, so that
    scripts/faults starts it again even if this process is killed outright."""

    def __init__(self, marker):
        self.marker = marker
        self.stopped_at = self.gone_at = self.started_at = self.up_at = None

    def run(self, hold=0.0):
        if self.marker:
            Path(self.marker).write_text(str(os.getpid()))
        try:
            self.stopped_at = time.monotonic()
            subprocess.run(["mariadb-admin", "-uroot", "-h127.0.0.1", "shutdown"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
            deadline = time.monotonic() + 30
            while pids_named("mariadbd") and time.monotonic() < deadline:
                time.sleep(0.05)
            if pids_named("mariadbd"):
                raise RuntimeError("mariadbd did not stop within 30 s")
            self.gone_at = time.monotonic()
            if hold > 0:
                time.sleep(hold)
        finally:
            self.started_at = time.monotonic()
            ok = mariadb_start()
            self.up_at = time.monotonic()
            if ok and self.marker:
                try:
                    os.unlink(self.marker)
                except FileNotFoundError:
                    pass
        if not ok:
            raise RuntimeError("MariaDB did not answer within 60 s of its start")
        return self.up_at - self.stopped_at


def mysql_kill_targets(conn, database, ports):
    """Connection ids of `database` whose client port is one of `ports` (the service's,
    through our proxy)."""
    import sqlalchemy as sa
    rows = conn.execute(sa.text(
        "SELECT ID, HOST FROM information_schema.PROCESSLIST WHERE DB = :db AND ID <> CONNECTION_ID()"),
        {"db": database}).all()
    out = []
    for cid, host in rows:
        m = re.search(r":(\d+)$", host or "")
        if m and int(m.group(1)) in ports:
            out.append(cid)
    return out
