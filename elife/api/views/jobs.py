"""The timed jobs' answers (POST /jobs/*), and `flask elife sweep --json`: the sweep's
summary, the purge's count. The reconciliation answers as `reconcile --json` does
(views/admin.reconcile_run)."""


def sweep_summary(summary):
    """A sweep.Summary; `more`: it stopped at its time limit, and work may be left."""
    return {"found": summary.found, "claimed": summary.claimed, "settled": summary.settled,
            "flagged": summary.flagged, "skipped": summary.skipped, "errors": summary.errors,
            "unconfirmed": summary.unconfirmed, "seconds": round(summary.seconds, 3),
            "bySelection": dict(summary.by_selection), "more": bool(summary.stopped_early)}


def purge_summary(purged, before, more):
    """jobs.purge(): how many payment notices went, older than which day (UTC)."""
    return {"purged": purged, "before": before.isoformat(), "more": bool(more)}
