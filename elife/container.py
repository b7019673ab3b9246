"""The image as WeChat Cloud Hosting runs it, here and without Docker.

What the Dockerfile says -- its ENV, WORKDIR, USER, EXPOSE and its exact ENTRYPOINT/CMD,
read by dockerfile-parse as Docker reads them -- and what container.config.json gives the
container (its envParams). `scripts/run-container` runs the image's command with them
beside the sandbox; tests/test_container.py does the same on a free port. The build's
own steps (the pip layer, the user, the capability to bind port 80) only Docker runs.

    scripts/run-container        # python -m elife.container
"""
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .config import JOBS_SECRETS, REPO_ROOT, REQUIRED_IN_PRODUCTION, _bool

DOCKERFILE = REPO_ROOT / "Dockerfile"
CONFIG = REPO_ROOT / "container.config.json"
# What a local run gives the sandbox's parties (config.py's development defaults).
SANDBOX_IDS = {"WECHAT_APPID": "wxsandbox000000000", "WECHAT_MCH_ID": "1900000000",
               "WECHAT_ENV_ID": "sandbox-env", "UNITEL_USERNAME": "sandbox", "UNITEL_PASSWORD": "sandbox"}


@dataclass(frozen=True)
class Image:
    base: str
    env: dict        # ENV, in the order Docker applies it
    workdir: str
    user: str        # "" when the Dockerfile names none (root)
    exposed: list    # EXPOSE, as written
    command: list    # ENTRYPOINT + CMD, exec form
    copies_context: bool  # `COPY . <WORKDIR>`: the repository is the WORKDIR

    def check_runnable_here(self):
        """The command runs from the repository only if the image is the repository
        copied into the WORKDIR."""
        if not self.copies_context:
            raise ValueError("the Dockerfile does not COPY the build context into its WORKDIR")
        if not self.command:
            raise ValueError("the Dockerfile has no CMD or ENTRYPOINT in exec form")


def _exec_form(value):
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if not isinstance(parsed, list) or not all(isinstance(a, str) for a in parsed):
        # The shell form runs under /bin/sh -c with no PID 1 signal handling of its own.
        raise ValueError(f"CMD/ENTRYPOINT must be in exec form (a JSON list), not {value!r}")
    return parsed


def read_image(path=DOCKERFILE):
    from dockerfile_parse import DockerfileParser
    parser = DockerfileParser(path=str(path))
    workdir, user, exposed, entrypoint, cmd, copies = "/", "", [], [], [], False
    for item in parser.structure:
        instruction, value = item["instruction"], item["value"].strip()
        if instruction == "FROM":  # a later stage starts afresh
            workdir, user, exposed, entrypoint, cmd, copies = "/", "", [], [], [], False
        elif instruction == "WORKDIR":
            workdir = os.path.normpath(os.path.join(workdir, value))
        elif instruction == "USER":
            user = value
        elif instruction == "EXPOSE":
            exposed += value.split()
        elif instruction == "ENTRYPOINT":
            entrypoint, cmd = _exec_form(value), []  # a new ENTRYPOINT resets CMD, as Docker does
        elif instruction == "CMD":
            cmd = _exec_form(value)
        elif instruction == "COPY":
            parts = [p for p in value.split() if not p.startswith("--")]
            if parts[:1] == ["."] and len(parts) == 2 and \
                    os.path.normpath(os.path.join(workdir, parts[1])) == workdir:
                copies = True
    return Image(base=parser.baseimage, env=dict(parser.envs), workdir=workdir, user=user,
                 exposed=exposed, command=entrypoint + cmd, copies_context=copies)


def read_config(path=CONFIG):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def environment(image, config, values, extra=None, base=None):
    """The container's process environment: the image's ENV, then envParams -- each from
    `values` where it names it (as whoever sets up the service fills them in the console),
    else as written -- then `extra` (what differs here from the platform: HOST, PORT). A
    required setting left empty is an error here: the container would refuse to start."""
    base = os.environ if base is None else base
    env = {"PATH": os.pathsep.join([str(Path(sys.executable).parent), base.get("PATH", os.defpath)]),
           "LANG": "C.UTF-8"}
    if base.get("HOME"):
        env["HOME"] = base["HOME"]
    env.update(image.env)
    for name, value in config.get("envParams", {}).items():
        env[name] = str(values.get(name) or value)
    required = REQUIRED_IN_PRODUCTION + (tuple(JOBS_SECRETS) if _bool(env.get("JOBS_ENABLED", "")) else ())
    missing = [n for n in required if not env.get(n)]
    if missing:
        raise ValueError("envParams left empty: " + ", ".join(missing))
    env.update(extra or {})
    return env


def local_values(port, sandbox_port, environ=None):
    """What a local run fills envParams with: the caller's environment where it sets
    them, else the sandbox, a SQLite file of its own and fresh secrets."""
    environ = os.environ if environ is None else environ
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    values = {"DATABASE_URL": f"sqlite:///{REPO_ROOT / 'instance' / 'container.db'}",
              "SECRET_KEY": secrets.token_urlsafe(32), "ADMIN_TOKEN": secrets.token_urlsafe(32),
              "JOBS_TOKEN": secrets.token_urlsafe(32),
              "UNITEL_API_URL": f"{sandbox}/unitel", "WECHAT_API_BASE": f"{sandbox}/wechat", **SANDBOX_IDS}
    values.update({k: v for k, v in environ.items() if k in values and v})
    return values


def start(image, env, log=None):
    """The image's command, from the repository (its WORKDIR), in a process group of its own."""
    image.check_runnable_here()
    return subprocess.Popen(image.command, cwd=REPO_ROOT, env=env, stdout=log,
                            stderr=None if log is None else subprocess.STDOUT, start_new_session=True)


def wait_healthy(url, proc, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def _port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def main():
    """scripts/run-container: the sandbox, and the image's command as Cloud Hosting runs it."""
    port = int(os.environ.get("PORT") or 3000)
    sandbox_port = int(os.environ.get("SANDBOX_PORT") or 3001)
    for name, p in (("PORT", port), ("SANDBOX_PORT", sandbox_port)):
        if not _port_free(p):
            sys.exit(f"scripts/run-container: port {p} ({name}) is already in use; set {name}")
    image, config = read_image(), read_config()
    values = local_values(port, sandbox_port)
    # Production settings pointed at the sandbox: WeChat's base URL is not an envParam (its
    # default is the real open API), so it is given here beside them.
    env = environment(image, config, values, extra={
        "HOST": "127.0.0.1", "PORT": str(port), "WECHAT_API_BASE": values["WECHAT_API_BASE"]})
    if (REPO_ROOT / ".env").exists():
        print("scripts/run-container: note: .env is read here, but the image has none (.dockerignore)",
              file=sys.stderr)
    (REPO_ROOT / "instance").mkdir(exist_ok=True)
    procs = [subprocess.Popen([sys.executable, "-m", "elife.sandbox"], cwd=REPO_ROOT, start_new_session=True,
                              env={**os.environ, "ELIFE_ENV": "development", "SANDBOX_PORT": str(sandbox_port),
                                   "SANDBOX_SERVICE_URL": f"http://127.0.0.1:{port}",
                                   "SANDBOX_STATE_FILE": str(REPO_ROOT / "instance" / f"sandbox-container-{sandbox_port}.json")})]

    def stop(*_):
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        print(f"scripts/run-container: {' '.join(image.command)}  (the image's command, ELIFE_ENV="
              f"{env['ELIFE_ENV']})", file=sys.stderr, flush=True)
        procs.append(start(image, env))
        url = f"http://127.0.0.1:{port}"
        if not wait_healthy(url, procs[-1]):
            rc = procs[-1].poll()
            sys.exit(f"scripts/run-container: the container did not become healthy"
                     f"{f' (it exited with code {rc})' if rc is not None else ' within a minute'}; see above")
        # The catalogue, as the person setting up Cloud Hosting loads it once (README).
        subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "elife", "seed"], cwd=REPO_ROOT,
                       env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"""
  eLife is running as Cloud Hosting runs it (production settings, the sandbox as WeChat
  and Unitel, logs on this terminal only).
    service  {url}     (curl {url}/health)
    sandbox  http://127.0.0.1:{sandbox_port}
    admin    ADMIN_TOKEN={env['ADMIN_TOKEN']}
    jobs     JOBS_TOKEN={env['JOBS_TOKEN']}   (curl -X POST {url}/jobs/sweep -H 'X-WX-SOURCE: wx_cron' \\
                                               -H "Authorization: Bearer $JOBS_TOKEN")
  A customer, as Cloud Hosting forwards the mini-program's calls (README "Where it runs"):
    curl -s {url}/orders -H 'X-WX-OPENID: o-local-customer' -H 'X-WX-SOURCE: wx_client'
  Ctrl-C stops both.
""", flush=True)
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())
