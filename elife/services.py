"""What the service is made of, built once by create_app: the settings and one client per
outside party. The edges (blueprints, commands, the after-answer pool) take them from
`current()`; domain functions are handed what they need as arguments."""
from dataclasses import dataclass, field

from .clients.unitel import UnitelClient
from .clients.wechat import WeChatClient
from .clients.wechat_messages import MessageClient
from .config import Settings
from .notify.tokens import DatabaseTokens


@dataclass(frozen=True)
class Services:
    settings: Settings = field(repr=False)  # secrets: never in a log line
    wechat: WeChatClient  # the mini-program's side: code2Session
    pay: WeChatClient     # WeChat Pay: orders, queries, refunds, the bill, notices
    unitel: UnitelClient
    messages: MessageClient  # subscribe messages (a host's access_token shared in the database)


def build(settings):
    wechat = WeChatClient(settings)
    return Services(settings=settings, wechat=wechat, pay=wechat, unitel=UnitelClient(settings),
                    messages=MessageClient(settings, DatabaseTokens(settings.WECHAT_APPID)))


def wechat_path(settings):
    """How WeChat Pay is called: "open-api", Cloud Hosting's (no signature, through the
    sidecar the platform runs beside the container), or "v3", WeChat Pay's API v3 directly
    (WECHAT_PAY_API=v3, where the code has that path)."""
    return "v3" if getattr(settings, "WECHAT_PAY_API", "cloud") == "v3" else "open-api"


def say_wechat_path(s):
    """At the service's start: which way WeChat Pay is called, and, inside Cloud Hosting,
    whether the environment named is the container's own (the platform sets CBR_ENV_ID)."""
    import logging

    from .logs import event
    log = logging.getLogger("elife.wechat")
    event(log, logging.INFO, "wechat_path", path=wechat_path(s), base=s.WECHAT_API_BASE,
          cloud_hosting=s.CBR_ENV_ID or "no")
    if s.CBR_ENV_ID and s.WECHAT_ENV_ID and s.CBR_ENV_ID != s.WECHAT_ENV_ID:
        event(log, logging.WARNING, "wechat_env_mismatch", env=s.WECHAT_ENV_ID, container_env=s.CBR_ENV_ID,
              message="WECHAT_ENV_ID is not the environment this container runs in: WeChat Pay's notices "
                      "would go to another environment's service")


def current():
    """The running app's services (an app context is needed: edges only)."""
    from flask import current_app
    return current_app.extensions["elife"]
