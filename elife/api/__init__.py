"""Thin blueprints: parse and check the request, call a domain module, shape the answer."""
