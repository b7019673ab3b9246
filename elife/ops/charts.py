"""Bar charts for /admin as plain geometry, drawn as inline SVG by the templates
(templates/admin/_charts.html). Nothing is loaded from anywhere: the page works offline.

Every function returns a dict with the SVG's `width`, `height` and a list of `bars`
(x, y, w, h, fill, label, text): the template only places what is computed here.
"""
from datetime import date, timedelta

from ..fulfil.state import RechargeStatus
from .reports import DELAY_AVG_MAX, DELAY_MAX_MAX, PENDING_COUNT_MAX, PENDING_MINUTES_MAX

STATUS_COLORS = {
    RechargeStatus.SUCCESS: "#2e7d32", RechargeStatus.FAILED: "#c62828", RechargeStatus.UNKNOWN: "#ef6c00",
    RechargeStatus.PROCESSING: "#1565c0", RechargeStatus.PENDING: "#757575",
}
PALETTE = ("#c62828", "#ef6c00", "#6a1b9a", "#1565c0", "#00838f", "#558b2f",
           "#ad1457", "#4e342e", "#f9a825", "#37474f")
NEUTRAL = "#546e7a"


def _num(x):
    try:
        return float(x or 0)
    except (TypeError, ValueError):
        return 0.0


def hbars(rows, width=460, label_w=120, text_w=110, bar_h=22, gap=10, scale_max=None, marks=()):
    """Horizontal bars. rows: [{"label", "value", "text", "fill"}]; marks: [(value, label)]
    drawn as dashed lines (thresholds) across the plot."""
    plot_x = label_w
    plot_w = width - label_w - text_w
    top = 18 if marks else 4
    values = [_num(r["value"]) for r in rows] + [_num(v) for v, _ in marks]
    top_value = max([_num(scale_max)] + values + [0])
    top_value = top_value or 1.0
    bars = []
    for i, r in enumerate(rows):
        v = max(_num(r["value"]), 0.0)
        w = plot_w * v / top_value
        if v > 0:
            w = max(w, 2)  # a value that is there stays visible
        y = top + i * (bar_h + gap)
        bars.append({"x": plot_x, "y": y, "w": round(w, 1), "h": bar_h, "fill": r.get("fill", NEUTRAL),
                     "label": r["label"], "text": r.get("text", ""), "label_y": y + bar_h * 0.7,
                     "text_x": round(plot_x + w + 6, 1)})
    height = top + max(len(rows), 1) * (bar_h + gap)
    lines = [{"x": round(plot_x + plot_w * _num(v) / top_value, 1), "label": label, "y1": top - 4,
              "y2": height - gap + 2} for v, label in marks]
    return {"width": width, "height": height, "bars": bars, "marks": lines, "plot_x": plot_x,
            "axis_y2": height - gap + 2, "axis_y1": top - 4, "empty": not rows}


def status_bars(success_rate):
    """Report 1: orders paid in the window, by recharge status."""
    rows = [{"label": x["rechargeStatus"], "value": x["count"],
             "text": f"{x['count']} ({x['percentage']}%)",
             "fill": STATUS_COLORS.get(x["rechargeStatus"], NEUTRAL)}
            for x in success_rate["byStatus"]]
    return hbars(rows)


def reason_colors(items):
    """A fixed colour per reason (by name order), shared by the bars and the legend."""
    reasons = sorted({x["reason"] for x in items})
    return {r: PALETTE[i % len(PALETTE)] for i, r in enumerate(reasons)}


def anomaly_columns(anomalies, today, width=460, height=200):
    """Report 2: one column per day of the window (empty days too), stacked by reason."""
    days = anomalies["days"]
    first = today - timedelta(days=days)
    dates = [first + timedelta(days=i) for i in range((today - first).days + 1)]
    colors = reason_colors(anomalies["items"])
    by_day = {}
    for x in anomalies["items"]:
        by_day.setdefault(x["date"], []).append(x)
    totals = {d.isoformat(): sum(x["count"] for x in by_day.get(d.isoformat(), [])) for d in dates}
    top_value = max(list(totals.values()) + [1])
    left, bottom, top = 30, 34, 16
    plot_h = height - bottom - top
    slot = (width - left) / max(len(dates), 1)
    col_w = max(min(slot * 0.6, 40), 3)
    bars, labels = [], []
    step = max(1, len(dates) // 10)  # at most about ten date labels
    for i, d in enumerate(dates):
        key = d.isoformat()
        x = left + i * slot + (slot - col_w) / 2
        y = top + plot_h
        for item in sorted(by_day.get(key, []), key=lambda it: it["reason"]):
            h = plot_h * item["count"] / top_value
            y -= h
            bars.append({"x": round(x, 1), "y": round(y, 1), "w": round(col_w, 1), "h": round(h, 1),
                         "fill": colors[item["reason"]], "label": f"{key} {item['reason']}",
                         "text": str(item["count"])})
        labels.append({"x": round(x + col_w / 2, 1), "date": d.strftime("%m-%d") if i % step == 0 else "",
                       "total": totals[key] or "", "total_y": round(y - 4, 1)})
    return {"width": width, "height": height, "bars": bars, "labels": labels,
            "legend": sorted(colors.items()), "axis_x1": left, "axis_x2": width,
            "axis_y": top + plot_h, "date_y": top + plot_h + 16, "top": top, "max": top_value,
            "empty": not anomalies["items"]}


def delay_bars(delay):
    """Report 3: seconds from paid to the claim (min, avg, max) and to success (avg, max),
    with the thresholds (avg DELAY_AVG_MAX s, max DELAY_MAX_MAX s) as marks."""
    rows = []
    for label, key, fill in (("claim min", "minDelaySec", "#2e7d32"), ("claim avg", "avgDelaySec", "#1565c0"),
                             ("claim max", "maxDelaySec", "#6a1b9a"),
                             ("success avg", "avgToSuccessSec", "#1565c0"),
                             ("success max", "maxToSuccessSec", "#6a1b9a")):
        v = delay.get(key)
        rows.append({"label": label, "value": v or 0, "text": "-" if v is None else f"{v:g} s", "fill": fill})
    return hbars(rows, marks=((DELAY_AVG_MAX, f"{DELAY_AVG_MAX} s"), (DELAY_MAX_MAX, f"{DELAY_MAX_MAX} s")))


def pending_bars(pending, count_max=PENDING_COUNT_MAX, minutes_max=PENDING_MINUTES_MAX):
    """Report 4: how many paid orders wait for compensation, and for how long, each
    against its own alert threshold (drawn as a dashed line at the threshold)."""
    def row(label, value, limit, unit):
        fill = "#c62828" if value > limit else "#2e7d32"
        return {"label": label, "value": value, "text": f"{value} {unit} (max {limit})", "fill": fill}

    count = hbars([row("waiting", pending["pendingCount"], count_max, "orders")],
                  scale_max=count_max * 1.5, marks=((count_max, str(count_max)),))
    age = hbars([row("oldest", pending["delayMinutes"], minutes_max, "min")],
                scale_max=minutes_max * 1.5, marks=((minutes_max, f"{minutes_max} min"),))
    return count, age


def all_charts(rep, today=None):
    today = today or date.today()
    count, age = pending_bars(rep["pending"])
    return {
        "status": status_bars(rep["successRate"]),
        "anomalies": anomaly_columns(rep["anomalies"], today),
        "delay": delay_bars(rep["delay"]),
        "pendingCount": count,
        "pendingAge": age,
    }
