"""deploy/prometheus-alerts.yml keeps the seed's thresholds (as reports.py has them) and
names only metrics GET /metrics serves."""
import re

from elife.ops import reports
from conftest import REPO

RULES = (REPO / "deploy" / "prometheus-alerts.yml").read_text(encoding="utf-8")


def expr(alert):
    m = re.search(rf"- alert: {alert}\n\s+expr: (\|\n(?:\s{{10,}}.*\n)+|.*\n)", RULES)
    assert m, alert
    return m.group(1)


def test_the_seeds_thresholds():
    assert f") < {float(reports.SUCCESS_RATE_MIN) / 100}" in expr("ElifeRechargeSuccessRateLow")
    assert f"elife_orders_pending_compensation > {reports.PENDING_COUNT_MAX}" in expr("ElifePendingCompensation")
    assert f"> {reports.PENDING_MINUTES_MAX * 60}" in expr("ElifeCompensationDelay")


def test_every_metric_named_is_served(client):
    served = client.get("/metrics", headers={"Authorization": "Bearer test-admin-token"}).get_data(as_text=True)
    named = set(re.findall(r"\b(elife_[a-z_]+)", RULES))
    assert named
    for name in named:
        assert re.search(rf"^(# TYPE )?{name}(\{{| )", served, re.M), name
