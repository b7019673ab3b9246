"""fulfil/state.py's table of moves, walked: every move refuses every state its row of the
table does not name (and changes nothing), makes its move from every state it names,
and docs/design.md's table of moves says the same as the code's."""
import re

import pytest
import sqlalchemy as sa

from conftest import REPO, SEED_ORDER, order_row
from elife import services
from elife.extensions import db
from elife.fulfil import state
from elife.fulfil.state import MOVES, PaymentStatus as P, RechargeStatus as R
from elife.models import Order
from elife.timeutil import utcnow

# What else each move needs to hold (its row's `when`), so that only the status it moves
# can be why it is refused.
CONTEXT = {
    "mark_paid": {"recharge_status": R.PENDING},
    "close_unpaid": {"recharge_status": R.PENDING},
    "start_refund": {"recharge_status": R.FAILED},
    "confirm_refund": {"recharge_status": R.FAILED},
    "refund_closed": {"recharge_status": R.FAILED},
    "claim": {"payment_status": P.PAID, "recharge_at": None},
    "resubmit": {"payment_status": P.PAID},
    "settle_success": {"payment_status": P.PAID},
    "settle_failed": {"payment_status": P.PAID},
    "mark_unknown": {"payment_status": P.PAID},
    "mark_delivered": {"payment_status": P.PAID},
    "mark_failed": {"payment_status": P.PAID},
    "give_up": {"payment_status": P.PAID, "submit_count": 2},
}
ALL = {state.PAYMENT: list(P), state.RECHARGE: list(R)}


def _call(name, order):
    s = services.current().settings
    calls = {
        "mark_paid": lambda: state.mark_paid(order, "4200000000000000000000000001"),
        "close_unpaid": lambda: state.close_unpaid(order, created_before=utcnow()),
        "start_refund": lambda: state.start_refund(order),
        "confirm_refund": lambda: state.confirm_refund(order),
        "refund_closed": lambda: state.refund_closed(order, "REFUNDCLOSE (test)"),
        "claim": lambda: state.claim(order),
        "resubmit": lambda: state.resubmit(s, order),
        "settle_success": lambda: state.settle_success(s, order),
        "settle_failed": lambda: state.settle_failed(s, order),
        "mark_unknown": lambda: state.mark_unknown(s, order, "recharge_unknown", "test"),
        "mark_delivered": lambda: state.mark_delivered(s, order),
        "mark_failed": lambda: state.mark_failed(s, order),
        "give_up": lambda: state.give_up(s, order),
    }
    row = calls[name]()
    db.session.commit()
    return row


@pytest.fixture
def one_order(client, customer, ctx):
    r = client.post("/orders", json=SEED_ORDER, headers=customer)
    assert r.status_code == 201, r.get_json()
    n = r.get_json()["orderNumber"]
    # Created a day ago, so that close_unpaid's window has passed.
    db.session.execute(sa.text("UPDATE orders SET created_at = :t WHERE order_number = :n"),
                       {"t": utcnow().replace(year=utcnow().year - 1), "n": n})
    db.session.commit()
    return n


def _put(n, column, status, move, **also):
    values = {"payment_status": P.PAID, "recharge_status": R.PROCESSING, "recharge_at": utcnow(),
              "submit_count": 1, "anomaly_reason": None, **CONTEXT[move.name], column: status, **also}
    db.session.execute(sa.update(Order).where(Order.order_number == n).values(**values))
    db.session.commit()
    return state.read_fresh(n)


CASES = [(m, s, s in m.froms) for m in MOVES for s in ALL[m.column]]


@pytest.mark.parametrize("move,status,allowed", CASES,
                         ids=[f"{m.name}-from-{s.value}" for m, s, _ in CASES])
def test_every_move_is_made_only_from_the_states_its_row_names(one_order, move, status, allowed):
    order = _put(one_order, move.column, status, move)
    before = dict(order_row(one_order))
    moved = _call(move.name, order)
    after = dict(order_row(one_order))
    if not allowed:
        assert moved is None, f"{move.name} moved an order in {status.value}"
        assert after == before, f"{move.name} from {status.value} changed the row"
        return
    assert moved is not None, f"{move.name} refused an order in {status.value}"
    assert after[move.column] == move.to
    assert after["version"] == before["version"] + 1
    # What it returns is the row as it now is, not a patched copy of the one it was given.
    now = db.session.execute(sa.select(Order.__table__).where(Order.order_number == one_order)).mappings().one()
    db.session.commit()
    assert {c: getattr(moved, c) for c in now.keys()} == dict(now)
    assert getattr(order, move.column) == status, "the order it was given is left as it was"


# The other status a move needs, where it needs one: written here from the diagram, not
# read from the table, so that a move whose guard is loosened fails below.
OTHER = {
    ("claim", R.PENDING): {P.PAID},
    ("start_refund", P.PAID): {R.FAILED},
    ("confirm_refund", P.PAID): {R.FAILED},
    ("mark_delivered", R.UNKNOWN): {P.PAID},
    ("mark_failed", R.UNKNOWN): {P.PAID},
    ("give_up", R.UNKNOWN): {P.PAID},
}
OTHER_COLUMN = {state.PAYMENT: state.RECHARGE, state.RECHARGE: state.PAYMENT}
GUARDED = [(m, s, o) for m in MOVES for s in m.froms for o in ALL[OTHER_COLUMN[m.column]]]


@pytest.mark.parametrize("move,status,other", GUARDED,
                         ids=[f"{m.name}-from-{s.value}-with-{o.value}" for m, s, o in GUARDED])
def test_every_move_needs_what_its_guard_names_of_the_other_status(one_order, move, status, other):
    order = _put(one_order, move.column, status, move, **{OTHER_COLUMN[move.column]: other})
    before = dict(order_row(one_order))
    moved = _call(move.name, order)
    expected = other in OTHER.get((move.name, status), ALL[OTHER_COLUMN[move.column]])
    assert (moved is not None) == expected, (
        f"{move.name} from {status.value} with {other.value}: {'refused' if expected else 'made'}")
    if not expected:
        assert dict(order_row(one_order)) == before


def test_a_move_from_a_stale_read_is_refused(one_order):
    """A move pinned to the version it read loses to any move made since."""
    order = _put(one_order, state.RECHARGE, R.PROCESSING, state.MOVE["settle_success"])
    assert _call("mark_unknown", order) is not None
    assert _call("settle_success", order) is None, "settled from a read the unknown move made stale"
    assert order_row(one_order)["recharge_status"] == R.UNKNOWN


def _documented_moves():
    """The rows of docs/design.md's table of moves: name -> (column, from, to)."""
    text = (REPO / "docs" / "design.md").read_text(encoding="utf-8")
    section = text.split("### The moves", 1)[1].split("\n#", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"\|\s*`(\w+)`\s*\|\s*(\w+)\s*\|([^|]+)\|\s*`?(\w+)`?\s*\|", line)
        if m:
            froms = tuple(sorted(re.findall(r"`(\w+)`", m.group(3))))
            rows[m.group(1)] = (m.group(2), froms, m.group(4))
    return rows


def test_the_design_documents_the_same_table_of_moves():
    documented = _documented_moves()
    in_code = {m.name: (m.column.split("_")[0], tuple(sorted(s.value for s in m.froms)), m.to.value)
               for m in MOVES}
    assert documented == in_code


def _messages_of(n):
    with db.engine.connect() as c:
        return [r[0] for r in c.execute(sa.text("SELECT kind FROM notifications WHERE order_number = :n"), {"n": n})]


EARNED = [(m, m.froms[0]) for m in MOVES]


@pytest.mark.parametrize("move,status", EARNED, ids=[m.name for m, _ in EARNED])
def test_a_move_that_tells_the_customer_writes_its_message_in_its_own_commit_and_no_other_does(
        one_order, move, status):
    """The outbox row (notify/outbox.py) comes with the move that earns it -- recharged with
    a success, failed_refunded with a failure (its refund follows), refunded only with the
    refund WeChat confirmed -- and with no other move."""
    order = _put(one_order, move.column, status, move)
    assert _messages_of(one_order) == []
    assert _call(move.name, order) is not None
    expected = {"settle_success": "recharged", "mark_delivered": "recharged", "settle_failed": "failed_refunded",
                "mark_failed": "failed_refunded", "give_up": "failed_refunded", "confirm_refund": "refunded"}
    assert _messages_of(one_order) == ([expected[move.name]] if move.name in expected else [])
    assert move.earns == expected.get(move.name, "")


def test_the_design_says_which_moves_tell_the_customer():
    text = (REPO / "docs" / "design.md").read_text(encoding="utf-8")
    section = text.split("### The moves", 1)[1].split("\n#", 1)[0]
    documented = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and re.fullmatch(r"`\w+`", cells[0]):
            documented[cells[0].strip("`")] = cells[4].strip("`")
    assert documented == {m.name: m.earns for m in MOVES}
