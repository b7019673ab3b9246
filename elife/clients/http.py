"""The HTTP session the clients share: keep-alive connections, and the environment's
proxy and CA-bundle settings read once per host.

requests reads HTTP(S)_PROXY, NO_PROXY and REQUESTS_CA_BUNDLE by scanning the whole
environment on every call: about a third of the client's CPU per call here
(bench/notes.md). The environment does not change under a running process, so the
answer for each scheme and host is kept. Calls that pass proxies, verify or cert
themselves are merged as requests always did.
"""
from urllib.parse import urlsplit

import requests


class Session(requests.Session):
    def __init__(self):
        super().__init__()
        self._env = {}

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        if proxies or stream is not None or verify is not None or cert is not None:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        key = urlsplit(url)[:2]  # scheme and host: NO_PROXY decides per host
        merged = self._env.get(key)
        if merged is None:
            merged = self._env[key] = super().merge_environment_settings(url, {}, None, None, None)
        return {**merged, "proxies": dict(merged["proxies"])}
