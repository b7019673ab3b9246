"""For the person on duty: reports, charts, the admin page's data, seed data, the
catalogue's sync with Unitel, the schema check and the smoke test. The commands that run
them are elife/cli.py."""
