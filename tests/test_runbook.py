"""The docs are tested: every ```bash runnable block of docs/operations.md runs, in the
order of the document, with `bash -euo pipefail`, against a temporary setup -- the
service under gunicorn and the sandbox from conftest.py, on the test database.

Each block runs in a shell of its own, as an operator would paste it into a terminal in
which the section's "set once" blocks (```bash runnable setup) were pasted first: those
are run as blocks themselves, and put in front of every later block of the same `##`
section. The settings reach the blocks through the environment: the blocks read BASE,
SANDBOX, DB, ... with defaults for a real server (`BASE=${BASE:-http://127.0.0.1:3000}`),
and the service's own settings (DATABASE_URL, LOG_DIR, PORT, ...) are the ones the live
service runs with. Blocks fenced as ```bash runnable mysql use the mariadb/mysql client
and run only on MariaDB, where it connects as root to 127.0.0.1 and the test database.

The first block that exits non-zero fails the test, and the failure shows the block,
where it is in the document and what it printed.
"""
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import ON_MYSQL, REPO, wait_settled

DOC = REPO / "docs" / "operations.md"
TAGS = {"runnable", "mysql", "setup"}  # what may follow "bash" in a fence's info string
BLOCK_TIMEOUT = 40  # seconds; the whole runbook takes well under a minute
# Variables the document sets for a section, and which the test must not inherit from
# whoever runs it, so that the document's own defaults or the values below apply.
DOC_VARIABLES = ("TOKEN", "ORDER", "SINCE", "DEPLOYED_AT", "RELEASE", "REVISION", "TARGET", "BASE",
                 "SANDBOX", "DB", "DB_HOST", "DB_USER", "BACKUP_DIR", "LOCK", "ELIFE_HOME", "DAY", "RLOCK", "BREAK")
# What some blocks must print, not only exit 0: (a line that identifies the block, the
# patterns the output of every block holding it must show). Each must match a block.
EXPECTED_OUTPUT = [
    ('print("missing required settings:"', [r"missing required settings: none"]),
    ('print("weak secrets:"', [r"TRUSTED_PROXY_COUNT=0", r"weak secrets: \(checked in production\)",
                               r"admin_auth_failed: \d+ in the log"]),
    (".venv/bin/flask --app wsgi db current", [r"0011_notifications \(head\)"]),
    ('curl -fsS "$BASE/health"; echo\n', [r'"database":"up"', r'"status":"ok"']),
    (".venv/bin/flask --app wsgi elife check-schema\n", [r"schema: ok"]),
    ("grep 数据库连接成功", [r"event=database_connected .*数据库连接成功"]),
    # the seed's functional tests 1-4
    ("| python3 -c 'import sys,json; o=json.load(sys.stdin); print(json.dumps(o, indent=2",
     [r'"paymentStatus": "unpaid"', r'"rechargeStatus": "pending"', r'"totalFee": 1050', r'"orderNumber": "ORD\d+"']),
    ('grep 支付金额不匹配 "$LOG_DIR/error.log"',
     [r'\{"errcode":0,"errmsg":"OK"\}', r"event=amount_mismatch order=ORD\d+ expected=1050 received=999999 支付金额不匹配",
      r"order ORD\d+ unpaid pending", r"flagged: no \| notice: rejected"]),
    ("grep attach中的订单号与URL参数不一致",
     [r'\{"errcode":0,"errmsg":"OK"\}', r"event=attach_mismatch order=ORD\d+ .*received=ORD999999",
      r"order ORD\d+ unpaid pending"]),
    ('echo "claims won:', [r"claims won: 1\n", r"top-ups the operator received: 1\n", r"order ORD\d+ paid success",
                           r"event=payment_confirmed order=ORD"]),
    ('scripts/smoke "$BASE" "$SANDBOX"', [r"smoke: all steps passed"]),
    ('elife incident --since "$DEPLOYED_AT" || rc=$?', [r"exit code 0 "]),
]
SEED_PHRASES = ("支付金额不匹配", "attach中的订单号与URL参数不一致", "订单正在被其他进程处理",
                "数据库连接成功", "数据库连接失败", "数据库操作失败，重试中")


@dataclass
class Block:
    line: int  # where the block's first line of code is in the document
    info: str
    body: str
    section: str  # the `## ` heading it is under

    @property
    def words(self):
        return self.info.split()

    @property
    def is_bash(self):
        return bool(self.words) and self.words[0] == "bash"

    @property
    def tags(self):
        return set(self.words[1:]) if self.is_bash else set()

    @property
    def runnable(self):
        return "runnable" in self.tags

    def __str__(self):
        return f"docs/operations.md:{self.line} (```{self.info})"


def parse(text):
    """Fenced blocks (```info ... ```), in document order."""
    blocks, info, start, lines, section = [], None, 0, [], ""
    for n, raw in enumerate(text.splitlines(), 1):
        if info is None:
            m = re.match(r"^```(.*)$", raw)
            if m:
                info, start, lines = m.group(1).strip(), n + 1, []
            elif raw.startswith("## "):
                section = raw[3:].strip()
        elif raw.strip() == "```":
            blocks.append(Block(start, info, "\n".join(lines) + "\n", section))
            info = None
        else:
            lines.append(raw)
    assert info is None, f"docs/operations.md: the block opened at line {start - 1} is never closed"
    return blocks


@pytest.fixture(scope="module")
def doc_blocks():
    return parse(DOC.read_text(encoding="utf-8"))


def _mysql_env(database_url):
    u = sa.engine.make_url(database_url)
    env = {"DB": u.database, "DB_HOST": u.host or "127.0.0.1", "DB_USER": u.username or "root"}
    if u.port and u.port != 3306:
        env["MYSQL_TCP_PORT"] = str(u.port)
    if u.password:
        env["MYSQL_PWD"] = u.password
    return env


def _block_env(settings_env, live, sandbox, tmp_path, order_number, database_url):
    env = {k: v for k, v in os.environ.items() if k not in DOC_VARIABLES}
    env.update(settings_env)
    env.update({
        "ELIFE_HOME": str(REPO),
        "BASE": live.url,
        "SANDBOX": sandbox.url,
        "BACKUP_DIR": str(tmp_path / "backups"),
        "LOCK": str(tmp_path / "elife-sweep.lock"),
        "RLOCK": str(tmp_path / "elife-reconcile.lock"),
        "ORDER": order_number,  # "the order under investigation" in the troubleshooting cases
        "PATH": f"{REPO / '.venv' / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
    })
    if ON_MYSQL:
        env.update(_mysql_env(database_url))
    else:  # the mysql blocks are skipped; these only keep `set -u` quiet if one is not
        env.update({"DB": "elife", "DB_HOST": "127.0.0.1", "DB_USER": "root"})
    return env


def _shown(text, limit=4000):
    text = text or ""
    return text if len(text) <= limit else "...\n" + text[-limit:]


def test_runnable_blocks_run_in_order(doc_blocks, live, sandbox, settings_env, database_url, tmp_path, ctx):
    # An order that was paid and recharged before the runbook starts: the one the
    # troubleshooting cases look at (ORDER=...), as an operator would name a real one.
    headers = live.login("runbook-investigated-order")
    order_number = live.new_paid_ready_order(headers)
    assert sandbox.pay(order_number).json() == {"errcode": 0, "errmsg": "OK"}
    wait_settled(order_number)
    env = _block_env(settings_env, live, sandbox, tmp_path, order_number, database_url)

    runnable = [b for b in doc_blocks if b.runnable]
    ran, skipped, setup, checked = [], [], {}, []
    started = time.monotonic()
    for block in runnable:
        if "mysql" in block.tags and not ON_MYSQL:
            skipped.append(block)
            continue
        prelude = "".join(b.body for b in setup.get(block.section, []))
        if prelude:
            prelude = f"# -- the section's set-once blocks --\n{prelude}# -- the block --\n"
        t0 = time.monotonic()
        try:
            proc = subprocess.run(["bash", "-euo", "pipefail", "-c", prelude + block.body], cwd=REPO, env=env,
                                  capture_output=True, text=True, timeout=BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"{block} did not finish within {BLOCK_TIMEOUT} s\n--- block ---\n{prelude}{block.body}"
                        f"--- stdout ---\n{_shown(exc.stdout if isinstance(exc.stdout, str) else '')}",
                        pytrace=False)
        print(f"\n=== {block} ({time.monotonic() - t0:.1f} s)\n{block.body}--- output ---\n"
              f"{_shown(proc.stdout, 2000)}{_shown(proc.stderr, 1000)}")
        if proc.returncode != 0:
            pytest.fail(f"{block} exited with {proc.returncode}\n--- block ---\n{prelude}{block.body}"
                        f"--- stdout ---\n{_shown(proc.stdout)}\n--- stderr ---\n{_shown(proc.stderr)}",
                        pytrace=False)
        for marker, patterns in EXPECTED_OUTPUT:
            if marker in block.body:
                for pattern in patterns:
                    if not re.search(pattern, proc.stdout):
                        pytest.fail(f"{block}: its output lacks {pattern!r}\n--- block ---\n{block.body}"
                                    f"--- stdout ---\n{_shown(proc.stdout)}", pytrace=False)
                checked.append(marker)
        ran.append(block)
        if "setup" in block.tags:
            setup.setdefault(block.section, []).append(block)
    print(f"\nrunbook: {len(ran)} blocks ran, {len(skipped)} MariaDB-only blocks skipped, "
          f"{time.monotonic() - started:.1f} s")
    assert ran, "no runnable block ran"
    missing = {m for m, _ in EXPECTED_OUTPUT} - set(checked)
    assert not missing, f"no block that ran has these lines (did a block change?): {sorted(missing)}"


def test_every_bash_block_is_marked_knowingly(doc_blocks):
    """A typo in a marker (```bash runable) would silently drop a block from the test."""
    bash = [b for b in doc_blocks if b.is_bash]
    assert len([b for b in bash if b.runnable]) >= 30
    for b in bash:
        unknown = b.tags - TAGS
        assert not unknown, f"{b}: unknown marker {sorted(unknown)}; use 'runnable', 'mysql', 'setup'"
        assert b.tags <= {"runnable"} or b.runnable, f"{b}: 'mysql' and 'setup' mark runnable blocks only"
        assert not {"mysql", "setup"} <= b.tags, f"{b}: a section's setup must run on every database"
    for b in doc_blocks:
        assert b.words and b.words[0] in ("bash", "sql", "text", "ini", "crontab"), \
            f"{b}: give every block a language (bash, sql, text, ini, crontab)"


def test_commands_named_in_plain_blocks_exist(doc_blocks):
    """Blocks that cannot run here (production-only) still name only real commands,
    migration revisions and files."""
    from flask_migrate.cli import db as db_group

    from elife.cli import elife_cli

    text = "".join(b.body for b in doc_blocks if b.is_bash)
    groups = {"elife": set(elife_cli.commands), "db": set(db_group.commands)}
    used = re.findall(r"flask --app wsgi (elife|db) ([a-z][a-z-]*)", text)
    assert used
    for group, command in used:
        assert command in groups[group], f"flask {group} {command} is not a command"
    revisions = {p.stem.split("_", 1)[0]: p for p in (REPO / "migrations" / "versions").glob("0*.py")}
    for rev in set(re.findall(r"\b(000\d_[a-z_0-9]+)\b", DOC.read_text(encoding="utf-8"))):
        path = revisions.get(rev.split("_", 1)[0])
        assert path and f'revision = "{rev}"' in path.read_text(), f"no migration revision {rev}"
    for path in set(re.findall(r"\b((?:scripts|deploy|docs|tests)/[\w.-]+)", text)):
        assert (REPO / path).exists(), f"{path} is named in the runbook but does not exist"


def test_seed_log_phrases_are_documented_and_logged(doc_blocks):
    """The seed's Chinese phrases, which operators grep for, are in the runbook's
    commands and in the code that logs them."""
    text = "".join(b.body for b in doc_blocks if b.is_bash)
    code = "".join(p.read_text(encoding="utf-8") for p in (REPO / "elife").rglob("*.py"))
    for phrase in SEED_PHRASES:
        assert phrase in text, f"the runbook never greps for {phrase}"
        assert phrase in code, f"nothing in elife/ logs {phrase}"
