"""scripts/bench --quick keeps working (MariaDB only): it starts the real pieces (gunicorn
with the production settings, the sandbox, wrk), writes every section of the results,
and the work it drives comes out right -- every notice recharged, every burst payment
recharged, every due order swept, no hot query scanning the table.

No speed is asserted: on a shared machine a timing is noise. The benchmark reports
figures; this test only keeps it runnable. The full run is `scripts/bench` (see
bench/results.md)."""
import json
import os
import shutil
import subprocess
import time

import pytest
import sqlalchemy as sa

from conftest import REPO, TEST_DB_URL, mysql_only
from elife.config import normalize_database_url

pytestmark = [mysql_only, pytest.mark.e2e]

SECTIONS = (
    "## Summary",
    "## 1. Throughput against the ceiling",
    "## 2. Paid → recharged under a burst",
    "## 2b. A slow operator",
    "## 3. The sweep at scale",
    "## 4. EXPLAIN of the hot queries",
    "## 5. Memory after the load",
    "## The exact commands",
)


def _need_wrk():
    if shutil.which("wrk"):
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("wrk is not installed: CI must install Debian's wrk (apt-get install -y wrk) "
                    "so that scripts/bench --quick is tested")
    pytest.skip("wrk is not installed (apt-get install -y wrk; scripts/bench installs it itself)")


def test_bench_quick_writes_every_section(tmp_path):
    _need_wrk()
    url = sa.engine.make_url(normalize_database_url(TEST_DB_URL))
    server = url.set(database="").render_as_string(hide_password=False)
    out, raw = tmp_path / "results.md", tmp_path / "results.json"
    started = time.monotonic()
    proc = subprocess.run(
        [str(REPO / "scripts" / "bench"), "--quick", "--out", str(out), "--json", str(raw),
         "--server", server, "--database", f"{url.database}_bench"],
        cwd=REPO, capture_output=True, text=True, timeout=240)
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-4000:]
    text = out.read_text()
    for heading in SECTIONS:
        assert heading in text, heading
    assert "nproc" in text and "load average at start" in text

    r = json.loads(raw.read_text())["results"]
    cfg = json.loads(raw.read_text())["config"]
    for key in ("ceiling", "products", "orders", "callback"):
        for run in r["throughput"][key]:
            assert run["requests"] > 0 and run["rps"] > 0, key
            assert run["non2xx"] == 0 and run["errors"]["timeout"] == 0, (key, run["errors"])
    for cb in r["throughput"]["callback"]:
        # every notice was delivered and recharged; wrk counted all but those in flight at its end
        assert cb["recharged"] == cb["delivered"] == cb["notices"], cb
        assert cb["notices"] - cfg["conns"] <= cb["requests"] <= cb["notices"], cb
    assert r["burst"]["success"] == r["burst"]["n"] == 50, r["burst"]
    slow = r["slow_operator"]  # every notice answered, every top-up sent once and done
    assert slow["ok_replies"] == slow["success"] == slow["topups"] == slow["topup_orders"] == slow["n"], slow
    assert slow["over_5s"] == 0, slow
    for size in ("small", "big"):
        s = r["sweep"][size]["runs"][-1]["summary"]
        assert s["found"] == s["claimed"] == s["settled"] == cfg["due"], s
        assert not s["stopped_early"] and s["errors"] == 0, s
    assert r["explain"], "no hot query captured"
    for e in r["explain"]:
        for step in e["explain"]:
            assert step["type"] not in ("ALL", "index") and step["key"], (e["label"], e["sql"], step)
    workers = [m for m in r["memory"] if m["app"] == "service" and m["role"] == "worker"]
    assert workers and all(m["rss_mb"] > 0 for m in workers)
    print(f"scripts/bench --quick took {took:.0f} s")
