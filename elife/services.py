"""What the service is made of, built once by create_app: the settings and one client per
outside party. The edges (blueprints, commands, the after-answer pool) take them from
`current()`; domain functions are handed what they need as arguments."""
from dataclasses import dataclass, field

from .clients.unitel import UnitelClient
from .clients.wechat import WeChatClient
from .config import Settings


@dataclass(frozen=True)
class Services:
    settings: Settings = field(repr=False)  # secrets: never in a log line
    wechat: WeChatClient  # the mini-program's side: code2Session
    pay: WeChatClient     # WeChat Pay: orders, queries, refunds, the bill, notices
    unitel: UnitelClient


def build(settings):
    wechat = WeChatClient(settings)
    return Services(settings=settings, wechat=wechat, pay=wechat, unitel=UnitelClient(settings))


def wechat_path(settings):
    """How WeChat Pay is called: "open-api", Cloud Hosting's (no signature, through the
    sidecar the platform runs beside the container), or "v3", WeChat Pay's API v3 directly
    (WECHAT_PAY_API=v3, where the code has that path)."""
    return "v3" if getattr(settings, "WECHAT_PAY_API", "cloud") == "v3" else "open-api"


def current():
    """The running app's services (an app context is needed: edges only)."""
    from flask import current_app
    return current_app.extensions["elife"]
