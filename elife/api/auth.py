import logging

from flask import Blueprint, jsonify

from .. import config, limits
from ..auth import issue_token, user_for_openid
from ..clients.wechat import WeChatClient, WeChatRejected, WeChatUnavailable
from ..errors import ApiError
from ..logs import event
from .common import client_ip, json_object, string_field

bp = Blueprint("auth", __name__, url_prefix="/auth")
log = logging.getLogger("elife.auth")


@bp.post("/login")
def login():
    limits.logins_by_address(client_ip())
    code = string_field(json_object(), "code", 128)
    try:
        openid = WeChatClient(config.current()).code2session(code)
    except WeChatRejected as e:
        event(log, logging.INFO, "login_rejected", errcode=e.code)
        raise ApiError(401, "invalid_code", "WeChat did not accept this login code") from None
    except WeChatUnavailable as e:
        event(log, logging.WARNING, "login_wechat_unavailable", error=str(e))
        raise ApiError(502, "wechat_unavailable", "WeChat could not be reached; try again") from None
    user = user_for_openid(openid)
    token, ttl = issue_token(user)
    return jsonify({"token": token, "expiresIn": ttl})
