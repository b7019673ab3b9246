"""scripts/faults: the fault-injection suite (issue 7, part 2).

Real processes on MariaDB -- the service under gunicorn with several workers, the
sandbox, two sweeps looping at once -- driven through waves of orders while faults are
injected: duplicate callback storms, every operator mode, a TCP proxy of ours between
the service and MariaDB and between the service and the operator (delays, resets),
KILL CONNECTION, SIGKILL of gunicorn workers and of a sweep in the middle of operator
calls, and a MariaDB restart. Then every fault is turned off, the sweeps settle, and
the whole history is checked (history.py). Run it with `scripts/faults [--quick]`.
"""
