"""bench/results.md from one run's figures (see bench/__main__.py)."""
import math
import platform
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOTES = REPO / "bench" / "notes.md"
TARGETS = {"orders": 0.50, "callback": 0.30, "burst_p99_s": 1.0, "sweep_ratio": 1.5, "rss_mb": 80.0,
           "slow_answer_p99_s": 0.3, "slow_wait_extra_s": 1.0}


def _ms(us):
    return f"{us / 1000:.1f} ms"


def _s(x):
    return "–" if x is None else f"{x:.3f} s"


def _mean_run(runs):
    """The mean of several wrk runs: rates, latencies and CPU averaged, counts summed."""
    n = len(runs)
    lat = {k: sum(r["latency_us"][k] for r in runs) / n for k in runs[0]["latency_us"]}
    cpu = {k: sum(r["cpu_ms"].get(k, 0) for r in runs) / n for k in runs[0]["cpu_ms"]}
    return {"rps": sum(r["rps"] for r in runs) / n, "latency_us": lat, "cpu_ms": cpu,
            "requests": sum(r["requests"] for r in runs), "non2xx": sum(r["non2xx"] for r in runs),
            "socket_errors": sum(r["socket_errors"] for r in runs)}


def _verdict(ok):
    return "**met**" if ok else "**MISSED**"


def _version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).splitlines()[0].strip()
    except Exception:  # noqa: BLE001 -- only shown
        return "?"


def _dist_version(name):
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def _compact(sql, limit=420):
    s = " ".join(sql.split())
    s = re.sub(r"SELECT orders\.id, orders\.order_number, orders\.user_id, .*? FROM orders",
               "SELECT orders.* FROM orders", s)
    return s if len(s) <= limit else s[:limit] + " …"


def write(b, out):
    r = b.results
    cfg = b.cfg
    L = []
    add = L.append
    tp = r["throughput"]
    mean = {k: _mean_run(v) for k, v in tp.items()}
    ceil_rps = mean["ceiling"]["rps"]
    ceil_p50 = mean["ceiling"]["latency_us"]["p50"]
    ceil_p99 = mean["ceiling"]["latency_us"]["p99"]
    ratio = {k: mean[k]["rps"] / ceil_rps for k in ("products", "orders", "callback")}
    burst = r["burst"]
    sw = r["sweep"]
    ex = r["explain"]
    scans = [e for e in ex if any(step["type"] in ("ALL", "index") or not step["key"] for step in e["explain"])]
    workers = [m for m in r["memory"] if m["app"] == "service" and m["role"] == "worker"]
    rss_max = max(m["rss_mb"] for m in workers)
    burst_p99 = burst["to_success"]["p99"] if burst["to_success"] else None
    slow = r["slow_operator"]
    slow_answer_p99 = slow["answer"]["p99"] if slow["answer"] else None
    slow_wait_p99 = slow["wait"]["p99"] if slow["wait"] else None
    met = {
        "orders": ratio["orders"] >= TARGETS["orders"],
        "callback": ratio["callback"] >= TARGETS["callback"],
        "burst": burst_p99 is not None and burst_p99 < TARGETS["burst_p99_s"] and burst["success"] == burst["n"],
        "sweep": sw["ratio"] <= TARGETS["sweep_ratio"],
        "explain": not scans,
        "rss": rss_max < TARGETS["rss_mb"],
        "slow_answer": (slow_answer_p99 is not None and slow_answer_p99 < TARGETS["slow_answer_p99_s"]
                        and slow["over_5s"] == 0),
        "slow_wait": (slow_wait_p99 is not None and slow["success"] == slow["n"]
                      and slow_wait_p99 < slow["delay"] + TARGETS["slow_wait_extra_s"]),
        "slow_once": slow["topups"] == slow["n"] == slow["topup_orders"],
    }

    add("# eLife benchmarks")
    add("")
    add(f"Written by `{' '.join(b.args.argv)}` ({cfg['mode']} mode"
        + ("; a development run: short and small, figures only indicative" if cfg["mode"] == "quick" else "")
        + f") on {b.started.strftime('%Y-%m-%d %H:%M')} UTC, in {b.elapsed:.0f} s.")
    add("")
    add(f"- Machine: `nproc` = {_nproc()}, load average at start {' '.join(b.load_start)} "
        f"(1, 5, 15 min), at the end {' '.join(b.load_end)}. Other work shared the machine: "
        "the ratios, measured side by side, matter more than the absolute numbers.")
    add(f"- MariaDB {b.mariadb_version} (database `{b.db_name}`, created and dropped by the run); "
        f"Python {platform.python_version()}; gunicorn {_dist_version('gunicorn')}, Flask "
        f"{_dist_version('flask')}, SQLAlchemy {_dist_version('sqlalchemy')}, PyMySQL {_dist_version('pymysql')}; "
        f"wrk {_version(['dpkg-query', '-W', '-f=${Version}', 'wrk'])} (Debian).")
    add(f"- The service: `gunicorn wsgi:app -c gunicorn.conf.py` with `ELIFE_ENV=production` and every "
        f"required setting given, {b.workers} gthread workers (gunicorn.conf.py's default for this machine), "
        "access log off; WeChat and Unitel are the sandbox (`python -m elife.sandbox`), a real HTTP server. "
        "`LIMIT_ORDERS_PER_MINUTE` and `LIMIT_ORDERS_PER_DAY` are raised to 1,000,000 so that the order "
        "benchmark is not answered with 429s; the limit check itself (both windows counted, one upsert per order) still runs.")
    add("")
    add("## Summary")
    add("")
    if b.notes:
        add("**This run was disturbed; see the notes at the end.**")
        add("")
    add("| figure | measured | target | |")
    add("|---|---|---|---|")
    add(f"| `POST /orders` requests/s as a share of the ceiling | {ratio['orders']:.0%} | ≥ 50 % | {_verdict(met['orders'])} |")
    add(f"| callback path requests/s as a share of the ceiling | {ratio['callback']:.0%} | ≥ 30 % | {_verdict(met['callback'])} |")
    add(f"| `GET /products` requests/s as a share of the ceiling | {ratio['products']:.0%} | – | |")
    add(f"| paid → recharged, {burst['n']} payments at once, operator 200 ms: p99 of recharged_at − paid_at "
        f"| {_s(burst_p99)} | < 1 s | {_verdict(met['burst'])} |")
    fp = burst["from_payment"]
    add(f"| the same burst, from the payment in the sandbox to recharged_at (includes waiting for a worker) "
        f"| p99 {_s(fp and fp['p99'])} | – | |")
    add(f"| {slow['n']} payments at once, operator {slow['delay']:g} s: WeChat's wait for the callback's answer, "
        f"p99 (max) | {_s(slow_answer_p99)} ({_s(slow['answer'] and slow['answer']['max'])}) "
        f"| < 0.3 s, none over 5 s | {_verdict(met['slow_answer'])} |")
    add(f"| the same: the customer's wait, payment → recharged, p99 | {_s(slow_wait_p99)} "
        f"| < {slow['delay'] + TARGETS['slow_wait_extra_s']:g} s | {_verdict(met['slow_wait'])} |")
    add(f"| the same: top-ups sent | {slow['topups']} for {slow['topup_orders']} orders | exactly {slow['n']} "
        f"| {_verdict(met['slow_once'])} |")
    add(f"| sweep over {cfg['due']:,} due orders: {sw['big']['rows']:,} rows / {sw['small']['rows']:,} rows "
        f"| {sw['ratio']:.2f} | ≤ 1.5 | {_verdict(met['sweep'])} |")
    add(f"| hot queries scanning the table (type ALL or a full index scan), {r['explain_rows']:,} rows "
        f"| {len(scans)} of {len(ex)} | 0 | {_verdict(met['explain'])} |")
    add(f"| largest gunicorn worker RSS after the load | {rss_max:.1f} MB | < 80 MB | {_verdict(met['rss'])} |")
    add("")

    # -- 1 ------------------------------------------------------------------------------
    add("## 1. Throughput against the ceiling")
    add("")
    add(f"wrk, {cfg['threads']} thread{'s' if cfg['threads'] > 1 else ''} and {cfg['conns']} connections "
        f"(a new connection per request: gunicorn's sync workers close each), {cfg['seconds']} s each after a "
        f"{cfg['warmup']} s warm-up (not counted), in {cfg['rounds']} round(s) of ceiling, `GET /products`, "
        "`POST /orders`, callback, and the ceiling once more at the end. The ceiling is `bench/ceiling.py`: a "
        "bare Flask app selecting one product by primary key through SQLAlchemy's pool (the service's engine "
        "options) and PyMySQL, on the same gunicorn settings and database. Each figure in **bold** is the "
        "mean of its runs; each ratio is that mean over the mean of all the ceiling's runs. Latency ratios are "
        "×: how many times the ceiling's.")
    add("")
    add("| endpoint | run | requests | req/s | p50 | p99 | req/s ÷ ceiling | p50 ÷ ceiling | p99 ÷ ceiling | errors | target |")
    add("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = [("ceiling: `GET /products/<id>`, bare Flask", "ceiling", None),
            ("`GET /products?operator=UNITEL&rechargeType=VOICE`", "products", None),
            ("`POST /orders` (1 of %d customers each request)" % cfg["users"], "orders", "≥ 50 %"),
            ("callback `POST /payment/callback/<n>` (a distinct paid order each)", "callback", "≥ 30 %")]
    for name, key, target in rows:
        for i, x in enumerate(tp[key] + [mean[key]]):
            last = i == len(tp[key])
            lat = x["latency_us"]
            b0, b1 = ("**", "**") if last else ("", "")
            add(f"| {name if i == 0 else ''} | {'mean' if last else i + 1} | {x['requests']:,.0f} | "
                f"{b0}{x['rps']:.0f}{b1} | {_ms(lat['p50'])} | {_ms(lat['p99'])} | "
                + (f"{b0}{x['rps'] / ceil_rps:.0%}{b1} | {lat['p50'] / ceil_p50:.1f}× | {lat['p99'] / ceil_p99:.1f}× | "
                   if key != "ceiling" else "– | – | – | ")
                + f"{x['non2xx'] + x['socket_errors']:.0f} | {(target or '–') if last else ''} |")
    add("")
    add("CPU time per answered request, from /proc (utime + stime) over each measured run (mean of the "
        "runs): the app's gunicorn master and workers (recycled workers included), the sandbox, and the "
        "MariaDB server (shared with whatever else ran on it, so only indicative). Less sensitive to a busy "
        "machine than requests per second: it says what one request costs, not how much CPU was left to us.")
    add("")
    add("| endpoint | app CPU / request | ÷ ceiling's | sandbox CPU / request | MariaDB CPU / request |")
    add("|---|---|---|---|---|")
    ceil_cpu = mean["ceiling"]["cpu_ms"]["app"]
    for name, key, _ in rows:
        x = mean[key]["cpu_ms"]
        add(f"| {name} | {x['app']:.2f} ms | "
            + ("–" if key == "ceiling" else f"{x['app'] / ceil_cpu:.1f}×")
            + f" | {x.get('sandbox', 0):.2f} ms | "
            + (f"{x['mariadb']:.2f} ms |" if x.get("mariadb", -1) >= 0 else "– (restarted) |"))
    add("")
    for i, cb in enumerate(tp["callback"], 1):
        add(f"Callback run {i}: wrk was handed {cb['notices']:,} genuine notices (prepared as the sandbox would "
            "send them: orders created through the API, `POST /payment/create`, paid in the sandbox with "
            "`{\"notify\": false}`, the notice from `GET /wechat/_notice/<n>`), the operator answering at once; "
            f"{cb['requests']:,} answers counted over {cb['duration_us'] / 1e6:.1f} s, from the first notice "
            "sent to the last answer counted (wrk is stopped once the last notice is handed out; the few still "
            "in flight are processed, not counted). "
            f"{cb['delivered']:,} reached the service"
            + (" (the others never left wrk)" if cb["delivered"] < cb["notices"] else "")
            + "; afterwards the orders were: " + ", ".join(f"{v} {k}" for k, v in sorted(cb["states"].items()))
            + ".")
        add("")
    add("Each callback is four transactions around two HTTP calls: the notice recorded with its order "
        "read; WeChat's order query (HTTP); the paid UPDATE, the claim and the submit's audit row, committed "
        "together before the operator is called (the design's at-most-once rule); the operator's submit "
        "(HTTP); its answer onto the audit row with the settle; the notice's decision.")
    add("")

    # -- 2 ------------------------------------------------------------------------------
    add("## 2. Paid → recharged under a burst")
    add("")
    add(f"{burst['n']} orders with their payments created, then paid in the sandbox at the same instant "
        f"({burst['n']} threads behind a barrier, `POST /wechat/_pay/<n>`: the sandbox delivers each callback "
        "as WeChat would). The sandbox operator answers every top-up in 200 ms (`slow` mode, the sandbox run "
        f"with `UNITEL_READ_TIMEOUT={0.6}`). Times from the order rows (millisecond columns). "
        f"{burst['success']} of {burst['n']} ended `success`; answers from the service: HTTP "
        f"{', '.join(map(str, burst['http']))}.")
    add("")
    add("| interval | p50 | p99 | max | target |")
    add("|---|---|---|---|---|")
    for name, key, target in (("`recharge_at − paid_at` (paid → claimed)", "to_claim", "–"),
                              ("`recharged_at − paid_at` (paid → success)", "to_success", "p99 < 1 s"),
                              ("payment in the sandbox → `recharged_at` (the customer's wait)", "from_payment", "–")):
        st = burst[key]
        add(f"| {name} | {_s(st and st['p50'])} | {_s(st and st['p99'])} | {_s(st and st['max'])} | {target} |")
    add("")
    add(f"Percentiles are nearest-rank: with {burst['n']} samples p99 is the largest, the same as max. "
        "`paid_at` is written when a worker takes the callback up (after WeChat's order query), so the "
        "first two rows leave out the time a callback waited for a free worker; the last row, from the "
        f"moment the sandbox was asked to pay, includes it: {burst['n']} callbacks of at least 200 ms each "
        f"on {b.workers} sync workers queue for up to "
        f"{math.ceil(burst['n'] / b.workers)} × 200 ms.")
    add("")

    # -- 2b -----------------------------------------------------------------------------
    add("## 2b. A slow operator")
    add("")
    add(f"{slow['n']} orders paid at WeChat (the sandbox, its notices held back), then their {slow['n']} "
        f"notices delivered to the service at the same instant ({slow['n']} threads behind a barrier), "
        f"the sandbox operator answering every top-up in {slow['delay']:g} s (`slow` mode with a delay). "
        "WeChat's notice is answered once the payment is confirmed and claimed; the top-up runs after the "
        "answer, on each worker's recharge pool. "
        f"Answers: HTTP {', '.join(map(str, slow['http']))}, {slow['ok_replies']} of {slow['n']} "
        f"`{{\"errcode\":0}}`; {slow['success']} of {slow['n']} ended `success`.")
    add("")
    add("| interval | p50 | p99 | max | target |")
    add("|---|---|---|---|---|")
    for name, key, target in (("the callback's answer (WeChat's wait)", "answer", "p99 < 0.3 s, none over 5 s"),
                              ("from the delivery to `recharged_at` (the customer's wait)", "wait",
                               f"p99 < {slow['delay'] + TARGETS['slow_wait_extra_s']:g} s")):
        st = slow[key]
        add(f"| {name} | {_s(st and st['p50'])} | {_s(st and st['p99'])} | {_s(st and st['max'])} | {target} |")
    add("")

    # -- 3 ------------------------------------------------------------------------------
    add("## 3. The sweep at scale")
    add("")
    add(f"{cfg['due']:,} due orders (paid, pending, unclaimed, paid 10 minutes ago) among {sw['small']['rows']:,} "
        f"rows, then among {sw['big']['rows']:,} rows, bulk-loaded with one `INSERT … SELECT … FROM "
        "seq_1_to_N` (MariaDB's sequence engine) and `ANALYZE TABLE`. The other rows are a year of history "
        f"across {cfg['bulk_users']:,} customers: recharged, refunded after a failure, abandoned unpaid and closed "
        "(some flagged) — none of them work for the sweep. One sweep is `elife.sweep.run()` in-process with "
        "the production settings, the sandbox operator answering at once; between repeats the due orders "
        "are made due again and the sandbox forgets their top-ups.")
    add("")
    add("| table | bulk load + ANALYZE | sweep runs (s) | median | found / claimed / settled |")
    add("|---|---|---|---|---|")
    for key in ("small", "big"):
        x = sw[key]
        s0 = x["runs"][-1]["summary"]
        add(f"| {x['rows']:,} rows | {x['load_s']:.1f} s | "
            + ", ".join(f"{run['seconds']:.2f}" for run in x["runs"])
            + f" | {x['median_s']:.2f} s | {s0['found']} / {s0['claimed']} / {s0['settled']}"
            + (" (stopped early)" if s0["stopped_early"] else "") + " |")
    add("")
    add(f"Ratio big / small: **{sw['ratio']:.2f}** (target ≤ 1.5).")
    add("")

    # -- 4 ------------------------------------------------------------------------------
    add(f"## 4. EXPLAIN of the hot queries on {r['explain_rows']:,} rows")
    add("")
    add("The statements the code actually sent (captured from the engine, as tests/test_explain.py does): "
        "the sweep's over the big table (its pages and, per order, the lookup, claim and settle), a callback "
        "for a bulk order (in-process), `GET /orders` for one customer, and `elife.reports.all_reports()`. "
        "`rows` is EXPLAIN's estimate; `r_rows` is what `ANALYZE` (the statement run, then rolled back) "
        "actually read.")
    add("")
    add("| # | query | sent by | type | key | rows (EXPLAIN) | r_rows (ANALYZE) | Extra | scan? |")
    add("|---|---|---|---|---|---|---|---|---|")
    for i, e in enumerate(ex, 1):
        for j, step in enumerate(e["explain"]):
            an = e["analyze"][j] if j < len(e["analyze"]) else {}
            bad = step["type"] in ("ALL", "index") or not step["key"]
            r_rows = an.get("r_rows")
            r_rows = "1 (const)" if r_rows is None and step["type"] in ("const", "eq_ref") else \
                ("–" if r_rows is None else f"{float(r_rows):g}")
            add(f"| {i if j == 0 else ''} | {e['label'] if j == 0 else ''} | {e['phase'] if j == 0 else ''} | "
                f"{step['type']} | {step['key'] or '–'} | {step['rows']} | {r_rows} | "
                f"{(step.get('Extra') or '').replace('|', '/')} | {'**SCAN**' if bad else 'no'} |")
    add("")
    add("<details><summary>The statements</summary>")
    add("")
    for i, e in enumerate(ex, 1):
        add(f"{i}. `{_compact(e['sql'])}`")
    add("")
    add("</details>")
    add("")

    # -- 5 ------------------------------------------------------------------------------
    add("## 5. Memory after the load")
    add("")
    add("VmRSS (and VmHWM, the peak) from /proc/<pid>/status, read after sections 1 and 2. gunicorn.conf.py "
        "recycles a worker after 5,000–5,500 requests (max_requests), so a worker read here may be younger "
        "than the run; its peak is the larger of the two numbers.")
    add("")
    add("| app | process | pid | VmRSS | VmHWM (peak) | RssAnon | PSS | private (USS) | target |")
    add("|---|---|---|---|---|---|---|---|---|")
    for m in r["memory"]:
        target = "VmRSS < 80 MB" if m["app"] == "service" and m["role"] == "worker" else "–"
        add(f"| {m['app']} | {m['role']} | {m['pid']} | {m['rss_mb']:.1f} MB | {m['hwm_mb']:.1f} MB | "
            f"{m.get('anon_mb', 0):.1f} MB | {m.get('pss_mb', 0):.1f} MB | {m.get('uss_mb', 0):.1f} MB | {target} |")
    add("")
    add("VmRSS counts the pages a worker shares with the master it was forked from (copy-on-write): "
        "gunicorn.conf.py imports `elife.config`, and so the whole `elife` package, in the master, so most of "
        "a worker's RSS is shared. PSS divides shared pages among the processes sharing them; private "
        "(USS: Private_Clean + Private_Dirty, from smaps_rollup) is what one more worker costs.")
    add("")
    wb = r.get("workers_booted", {})
    if wb:
        add("Workers gunicorn started during the run, after the first ones: "
            + "; ".join(f"{k}: {v['booted']} ({v['max_requests']} at max_requests, {v['timeouts']} after a "
                        f"worker timeout)" for k, v in wb.items()) + ".")
        add("")

    # -- commands -----------------------------------------------------------------------
    add("## The exact commands")
    add("")
    add("Ports were free ones chosen for the run; `$BENCH_TMP` is the run's temporary directory.")
    add("")
    add("```sh")
    add(" ".join(b.args.argv))
    add("# processes")
    L.extend(b.server_commands)
    add(f"# load (wrk; the Lua scripts are in bench/lua); each GET and POST /orders run is preceded by the same command with "
        f"-d{cfg['warmup']}s as a warm-up, not counted")
    L.extend(b.wrk.commands)
    add("```")
    add("")
    add("<details><summary>The bulk load (section 3)</summary>")
    add("")
    add("```sql")
    add(b.BULK_ORDERS.strip("\n").replace("{ub}", str(b.BULK_USER_BASE)).replace("{nu}", str(cfg["bulk_users"]))
        .replace("{due}", str(cfg["due"])).replace("{rows}", "N"))
    add("```")
    add("")
    add("</details>")
    add("")
    if b.notes:
        add("## Notes from this run")
        add("")
        L.extend(f"- {n}" for n in b.notes)
        add("")
    if NOTES.exists():
        L.append(NOTES.read_text().rstrip() + "\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(L).rstrip() + "\n")


def _nproc():
    return _version(["nproc"])
