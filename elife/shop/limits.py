from ..limits import *  # noqa: F401,F403 -- moved to elife/limits.py; old import path, for fulfil/ and api/payment.py
