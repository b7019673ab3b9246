"""The project's own commands: `flask --app wsgi elife <command>` (scripts set FLASK_APP)."""
import functools
import json
import sys

import click
from flask.cli import AppGroup

from . import database, services
from .api.views import admin as admin_view
from .api.views import catalogue as catalogue_view
from .api.views import jobs as jobs_view


class _DatabaseCommands(AppGroup):
    """Every command of the group works on the database: it says which one (on stderr:
    stdout is the command's output, `report --json` is piped into other tools), then
    waits for it, as the service does at start (DB_MAX_RETRIES, DB_RETRY_DELAY), and
    stops with one line if it never answers. Inside the app context, after the options
    are parsed (so --help and a bad option never wait)."""

    def command(self, *args, **kwargs):
        register = super().command(*args, **kwargs)
        return lambda f: register(_needs_database(f))


def _database_line():
    """Which database a command works on, said first (stderr: stdout may be --json). The
    group's own commands say it through _needs_database; the sub-groups' call it."""
    click.echo(f"database: {database.describe(services.current().settings.DATABASE_URL)}", err=True)


def _needs_database(f):
    @functools.wraps(f)
    def run(*args, **kwargs):
        # A sweep without DATABASE_URL would sweep the SQLite file while the service uses
        # MariaDB: say which database, every time.
        _database_line()
        if not database.wait_for_database(services.current().settings):
            try:
                database.ping()  # once more, for the error to show
            except Exception as exc:  # noqa: BLE001 -- cannot run at all: say so and fail
                name = click.get_current_context().info_name
                click.echo(f"{name}: could not run: database unreachable: "
                           f"{str(exc).splitlines()[0][:200]}", err=True)
                sys.exit(1)
        return f(*args, **kwargs)
    return run


elife_cli = _DatabaseCommands("elife", help="eLife operations: seed data, the sweep, reports, the reconciliation.")


@elife_cli.command("seed")
def seed_command():
    """Add the Unitel catalogue and an active MNT->CNY rate (idempotent)."""
    from .ops.seed import seed
    click.echo(f"seed: {seed()} rows added")


@elife_cli.command("sweep")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output (what POST /jobs/sweep answers)")
def sweep_command(as_json):
    """Run the compensation sweep once (what cron runs every minute)."""
    from . import services
    from .fulfil import sweep
    summary = sweep.run(services.current())
    click.echo(json.dumps(jobs_view.sweep_summary(summary), indent=2) if as_json else summary.line())


@elife_cli.command("reconcile")
@click.option("--date", "day", default=None, metavar="YYYYMMDD",
              help="WeChat's bill day, China time (default: yesterday in China)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def reconcile_command(day, as_json):
    """Compare one day of WeChat's bill with our orders. Exit 0 balanced, 2 breaks found,
    3 the bill is not available yet (try later), 1 anything else."""
    from datetime import datetime

    from .clients.wechat import BillFormatError, BillNotReady, WeChatRejected, WeChatUnavailable
    from .extensions import db
    from .fulfil import reconcile
    click.echo(f"reconcile: database {db.engine.url.render_as_string(hide_password=True)}", err=True)
    try:
        when = datetime.strptime(day, "%Y%m%d").date() if day is not None else reconcile.default_day()
    except ValueError:
        click.echo(f"reconcile: --date must be YYYYMMDD (China time), not {day!r}", err=True)
        sys.exit(1)
    try:
        from . import services
        result = reconcile.run(services.current(), when)
    except BillNotReady as exc:
        click.echo(f"reconcile: {exc}; try again later", err=True)
        sys.exit(3)
    except (WeChatUnavailable, WeChatRejected, BillFormatError) as exc:
        click.echo(f"reconcile: could not reconcile {when:%Y%m%d}: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(admin_view.reconcile_run(result), ensure_ascii=False, indent=2))
    else:
        click.echo(reconcile_table(result))
    sys.exit(2 if result.breaks else 0)


def reconcile_table(result):
    w, o = result.wechat, result.ours
    lines = [f"reconcile {result.day:%Y%m%d} (China time): {result.status}",
             f"  WeChat: {w['trades']} trades {w['tradeFee']} fen, {w['refunds']} refunds {w['refundFee']} fen",
             f"  ours:   {o['trades']} trades {o['tradeFee']} fen, {o['refunds']} refunds {o['refundFee']} fen"
             + (f" ({o['onOtherDays']} on another day's bill)" if o["onOtherDays"] else "")]
    for b in result.breaks:
        def fen(v):
            return "-" if v is None else json.dumps(v)
        lines.append(f"  {b.kind:<23} {b.order_number or '-':<26} ours {fen(b.ours)}  theirs {fen(b.theirs)}"
                     + (f"  ({b.detail})" if b.detail else "")
                     + ("  recovered: paid and recharged" if b.order_number in result.recovered else ""))
    if result.kept_resolved:
        lines.append(f"  {result.kept_resolved} found again, already resolved by a person")
    lines.append(f"{len(result.breaks)} breaks: /admin/reconciliations/{result.day:%Y%m%d}"
                 if result.breaks else "balanced")
    return "\n".join(lines)


@elife_cli.command("report")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.option("--hours", default=24, show_default=True, help="window for success rate and delay")
@click.option("--days", default=7, show_default=True, help="window for anomalies by day")
def report_command(as_json, hours, days):
    """The four monitoring reports and the reconciliation's state; exit code 2 when an
    alert threshold is crossed (a day older than two days never reconciled is one)."""
    from . import services
    from .ops import reports
    rep = reports.all_reports(has_status_query=services.current().unitel.has_status_query, hours=hours, days=days)
    click.echo(json.dumps(rep, ensure_ascii=False, indent=2) if as_json else reports.as_table(rep))
    sys.exit(2 if rep["alert"] else 0)


@elife_cli.command("check-schema")
def check_schema_command():
    """Say what the database lacks against this code (exit 1 if anything)."""
    from .ops.schema_check import problems
    found = problems()
    for p in found:
        click.echo(f"schema: {p}")
    if found:
        sys.exit(1)
    click.echo("schema: ok (migrations at head; every column and index present)")


@elife_cli.command("incident")
@click.option("--since", required=True, help="UTC time of the deploy, e.g. '2026-01-18 10:00'")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def incident_command(since, as_json):
    """Scope an incident: orders paid since SINCE, by state; anything sent twice (exit 2)."""
    from datetime import datetime

    from .ops import reports
    try:
        when = datetime.fromisoformat(since.replace("T", " ").rstrip("Z"))
    except ValueError:
        raise click.BadParameter("use a UTC time such as '2026-01-18 10:00'", param_hint="--since")
    scope = reports.incident_scope(when)
    dupes = [d for d in scope["duplicateSubmits"] if not d["explained"]]
    if as_json:
        click.echo(json.dumps(scope, ensure_ascii=False, indent=2))
    else:
        click.echo(f"incident scope: orders paid since {scope['since']}")
        for row in scope["byStatus"]:
            click.echo(f"  {row['paymentStatus']:<9} {row['rechargeStatus']:<11} {row['count']:>7}")
        click.echo(f"  flagged for a person: {scope['flagged']}")
        for d in scope["duplicateSubmits"]:
            how = "one allowed resubmit after 'not found'" if d["explained"] else "SENT TWICE"
            click.echo(f"  {d['orderNumber']} msisdn {d['msisdn']}: {d['submits']} submits ({how})")
        click.echo(f"  orders sent to the operator twice without cause: {len(dupes)}")
    sys.exit(2 if dupes else 0)


# -- the exchange rate and the catalogue, without SQL ------------------------------------------

def _actor(by):
    import getpass

    from .validators import clean_name
    try:
        who = by or getpass.getuser()
    except Exception:  # noqa: BLE001 -- no user name in this environment
        who = ""
    return f"cli:{clean_name(who) or 'unknown'}"


def _refused(exc):
    """A domain refusal as one line and exit 1 (2 for a move that needs --force)."""
    from .errors import Conflict
    click.echo(f"refused ({exc.code}): {exc.message}", err=True)
    sys.exit(2 if isinstance(exc, Conflict) and exc.code.endswith("_change_too_large") else 1)


@elife_cli.group("rate")
def rate_cli():
    """The MNT->CNY exchange rate: show it, set it."""


@rate_cli.command("show")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def rate_show(as_json):
    """The active rate, when and by whom it was set, and the last ten."""
    from decimal import Decimal

    from .shop import rates
    _database_line()
    active, rows = catalogue_view.rate_history(rates.history())
    if as_json:
        click.echo(json.dumps({"active": active, "history": rows}, ensure_ascii=False, indent=2))
        return
    if active:
        per_yuan = (1 / Decimal(active["rate"])).quantize(Decimal("0.01"))
        click.echo(f"active rate: {active['rate']} CNY per MNT (1 CNY = {per_yuan} MNT)")
        click.echo(f"  set {active['setAt']} by {active['setBy'] or '-'}: {active['note'] or '-'}")
    else:
        click.echo("active rate: none (orders are refused: no_exchange_rate)")
    click.echo("last ten:")
    for r in rows:
        click.echo(f"  {r['setAt']}  {r['rate']:<14} {'ACTIVE  ' if r['active'] else 'replaced'}  "
                   f"{r['setBy'] or '-'}: {r['note'] or '-'}")


@rate_cli.command("set")
@click.argument("rate")
@click.option("--note", required=True, help="why the rate changes (kept with it)")
@click.option("--force", is_flag=True, help="allow a move of more than 10 % from the active rate")
@click.option("--by", default="", help="who you are (default: your login name)")
def rate_set(rate, note, force, by):
    """Make RATE (yuan for one tugrik, e.g. 0.00210000) the active rate."""
    from .errors import DomainError
    from .shop import rates
    _database_line()
    try:
        old, new = rates.set_rate(rate, _actor(by), note, force=force)
    except DomainError as exc:
        _refused(exc)
    if old is None:
        click.echo(f"rate set: {new} (there was no active rate)")
    else:
        click.echo(f"rate set: {old} -> {new} ({rates.move_text(rates.move(old, new))})")


@elife_cli.group("product")
def product_cli():
    """The catalogue: list, add, set a price, take off sale and put back."""


def _product_options(fn):
    for opt in reversed((
            click.option("--operator", required=True, help="e.g. UNITEL"),
            click.option("--type", "recharge_type", required=True, help="VOICE or DATA"),
            click.option("--code", required=True, help="the product code, e.g. 5000"))):
        fn = opt(fn)
    return fn


def _show_product(p):
    """One line for a product, from its JSON (views.catalogue.listed)."""
    fee = f"{p['totalFee']} fen" if p["totalFee"] is not None else "no price"
    return (f"{p['productOperator']:<8} {p['rechargeType']:<6} {p['productCode']:<10} "
            f"{p['priceTg']:>9} MNT  {fee:>10}  {'on sale ' if p['active'] else 'DISABLED'}  {p['name']}")


@product_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def product_list(as_json):
    """Every product, on sale or not, priced at the active rate."""
    from .shop import product_admin
    _database_line()
    items = [catalogue_view.listed(p) for p in product_admin.all_products()]
    if as_json:
        click.echo(json.dumps({"products": items}, ensure_ascii=False, indent=2))
        return
    for p in items:
        click.echo(_show_product(p))
    click.echo(f"{len(items)} products, {sum(p['active'] for p in items)} on sale")


def _set_active(operator, recharge_type, code, note, by, active):
    from .errors import DomainError
    from .shop import product_admin
    _database_line()
    try:
        item, changed = product_admin.set_active(operator, recharge_type, code, active, _actor(by), note)
    except DomainError as exc:
        _refused(exc)
    click.echo(("" if changed else "unchanged, already: ") + _show_product(catalogue_view.listed(item)))


@product_cli.command("disable")
@_product_options
@click.option("--note", default="", help="why (kept with the change)")
@click.option("--by", default="", help="who you are (default: your login name)")
def product_disable(operator, recharge_type, code, note, by):
    """Take a product off sale (orders already made are untouched)."""
    _set_active(operator, recharge_type, code, note, by, False)


@product_cli.command("enable")
@_product_options
@click.option("--note", default="", help="why (kept with the change)")
@click.option("--by", default="", help="who you are (default: your login name)")
def product_enable(operator, recharge_type, code, note, by):
    """Put a product back on sale."""
    _set_active(operator, recharge_type, code, note, by, True)


@product_cli.command("add")
@_product_options
@click.option("--price", "price_tg", required=True, help="the price in whole tugrik (MNT)")
@click.option("--name", required=True, help="what the customer sees")
@click.option("--disabled", is_flag=True, help="add it off sale")
@click.option("--note", default="", help="why (kept with the change)")
@click.option("--by", default="", help="who you are (default: your login name)")
def product_add(operator, recharge_type, code, price_tg, name, disabled, note, by):
    """Add a denomination."""
    from .errors import DomainError
    from .shop import product_admin
    _database_line()
    try:
        item = product_admin.add(operator, recharge_type, code, price_tg, name, _actor(by), note, active=not disabled)
    except DomainError as exc:
        _refused(exc)
    click.echo("added: " + _show_product(catalogue_view.listed(item)))


@product_cli.command("set-price")
@_product_options
@click.option("--price", "price_tg", required=True, help="the new price in whole tugrik (MNT)")
@click.option("--force", is_flag=True, help="allow a move of more than 10 %")
@click.option("--note", default="", help="why (kept with the change)")
@click.option("--by", default="", help="who you are (default: your login name)")
def product_set_price(operator, recharge_type, code, price_tg, force, note, by):
    """Set a product's MNT price (orders already made keep theirs)."""
    from .errors import DomainError
    from .shop import product_admin
    _database_line()
    try:
        old, item = product_admin.set_price(operator, recharge_type, code, price_tg, _actor(by), note, force=force)
    except DomainError as exc:
        _refused(exc)
    p = catalogue_view.listed(item)
    click.echo(f"price {old} -> {p['priceTg']} MNT: " + _show_product(p))


@product_cli.command("history")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
def product_history(limit):
    """The latest catalogue changes: what, who, when."""
    from .shop import product_admin
    _database_line()
    for c in map(catalogue_view.change, product_admin.changes(limit)):
        price = f" {c['oldPriceTg']} -> {c['newPriceTg']} MNT" if c["action"] == "set_price" else (
            f" {c['newPriceTg']} MNT" if c["action"] == "add" else "")
        click.echo(f"{c['at']}  {c['action']:<9} {c['product']}{price}  by {c['by']}: {c['note'] or '-'}")


@product_cli.command("sync")
@click.option("--msisdn", required=True, help="a Unitel number whose package list is read")
@click.option("--apply", "do_apply", is_flag=True, help="write the differences (default: only show them)")
def product_sync_command(msisdn, do_apply):
    """Our products against Unitel's package list for a number (/service/servicetype).

    Exit code 0: in step (or --apply wrote it); 2: differences shown, nothing written;
    1: the number is not Unitel's, or Unitel could not be asked."""
    from .clients.unitel import Unreachable
    from .errors import Invalid
    from .shop import phones
    from .ops import product_sync
    _database_line()
    try:
        number = phones.check_operator(msisdn, product_sync.OPERATOR)
    except Invalid as exc:
        click.echo(f"product sync: --msisdn: {exc.message}", err=True)
        sys.exit(1)
    try:
        servicetype, lines = product_sync.diff(services.current().unitel, number)
    except Unreachable as exc:
        click.echo(f"product sync: Unitel could not be asked: {exc}", err=True)
        sys.exit(1)
    counts = {k: sum(1 for x in lines if x.kind == k) for k in ("new", "changed", "same", "missing", "skipped")}
    click.echo(f"product sync: Unitel's list for {phones.mask(number)} ({servicetype or 'no servicetype'}): "
               f"{counts['new'] + counts['changed'] + counts['same'] + counts['skipped']} packages")
    rate = product_sync.rate()
    for line in lines:
        for text in product_sync.describe(line, rate):
            click.echo(text)
    summary = (f"{counts['new']} new, {counts['changed']} changed, {counts['same']} the same, "
               f"{counts['missing']} of ours not in this list, {counts['skipped']} skipped")
    if not do_apply:
        due = counts["new"] + counts["changed"]
        click.echo(f"product sync: {summary}; nothing written" + (" (--apply writes it)" if due else ""))
        sys.exit(2 if due else 0)
    added, updated = product_sync.apply(lines)
    click.echo(f"product sync: {summary}; written: {added} added, {updated} updated")


# -- subscribe messages: which template says what --------------------------------------------

@elife_cli.group("notify")
def notify_cli():
    """The customer's subscribe messages: the templates they are sent with."""


@notify_cli.group("template")
def template_cli():
    """The template of each kind of message (recharged, failed_refunded, refunded)."""


@template_cli.command("set")
@click.argument("kind", type=click.Choice(["recharged", "failed_refunded", "refunded"]))
@click.argument("template_id")
@click.argument("more", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--field", "pairs", multiple=True, metavar="KEY=VALUE",
              help="a field of the template and what goes into it: phone, product, amount, time, "
                   "reason or order (thing1=product); repeat it, or list more KEY=VALUE after it")
@click.option("--by", default="", help="who you are (default: your login name)")
def template_set(kind, template_id, more, pairs, by):
    """Send KIND messages with TEMPLATE_ID (from the mini-program console: 订阅消息 ->
    我的模板), its fields filled as --field says. Each value is checked against its
    field's type; the mini-program asks customers for this template id from now on."""
    from .errors import DomainError
    from .notify import templates
    _database_line()
    try:
        t = templates.set_template(kind, template_id, templates.parse_fields(pairs + more), _actor(by))
    except DomainError as exc:
        _refused(exc)
    click.echo(f"template set: {_show_template(t)}")


@template_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def template_list(as_json):
    """Each kind of message, its template and what goes into which field."""
    from .notify import fields, templates
    from .timeutil import iso
    _database_line()
    configured = templates.all_templates()
    if as_json:
        click.echo(json.dumps({"templates": [
            {"kind": t.kind, "templateId": t.template_id, "fields": t.fields, "updatedBy": t.updated_by,
             "updatedAt": iso(t.updated_at)} for t in configured.values()]}, ensure_ascii=False, indent=2))
        return
    for kind in fields.KINDS:
        t = configured.get(kind)
        click.echo(_show_template(t) if t else f"{kind:<16} not configured: no {kind} messages are sent")


def _show_template(t):
    said = " ".join(f"{k}={v}" for k, v in t.fields.items())
    return f"{t.kind:<16} {t.template_id}  {said}  (by {t.updated_by or '-'})"


def register(app):
    app.cli.add_command(elife_cli)
