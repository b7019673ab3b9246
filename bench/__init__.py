"""Benchmarks of the eLife service (scripts/bench): benchmark-only code, never imported
by the service. See bench/__main__.py for what is measured and bench/results.md for the
latest figures."""
