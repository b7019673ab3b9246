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


def current():
    """The running app's services (an app context is needed: edges only)."""
    from flask import current_app
    return current_app.extensions["elife"]
