"""For the person on duty: reports, charts, the admin page's data, CLI commands, seed
data, the schema check and the smoke test."""
