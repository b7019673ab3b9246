"""The sandbox's WeChat subscribe messages: subscribeMessage.send and stable_token, as
WeChat answers them, and the control endpoints that look and play (the sandbox contract
in docs/design.md):

- GET /wechat/_messages: every message WeChat accepted, oldest first, each as sent
  (`touser`, `template_id`, `page`, `data`, `miniprogram_state`, `lang`) with `via`
  (`open-api`: no access_token, as from inside Cloud Hosting; `token`) and `at`.
- GET /wechat/_message_calls: every send that arrived, accepted or not, with the
  `errcode` and `errmsg` it was answered.
- POST /wechat/_messages_mode {"errcode": 43101 | -1 | 0, "count": n}: how sends are
  answered from now on (0: as WeChat would); with `count`, only the next n, then 0 again.
  `"http": 503` answers -1 with that status (a gateway failing in front of WeChat).
- POST /wechat/_expire_tokens: every access_token given so far is void (a send with one
  answers 40001); stable_token then gives a new one.
- GET /wechat/_stable_tokens: every stable_token request (appid, force_refresh, at).

It checks what WeChat checks, in its own words (it shares no code with the service):
touser (40003), template_id (40037), page (41030: a page path, not a URL), and every field
by the type its key names (47003 "argument invalid! data.thing1.value ..."), by the limits
in WeChat's table (elife/notify/fields.py has it too, on the sending side).
"""
import json
import re
import secrets
import time

from flask import Response, jsonify, request

TOKEN_SECONDS = 7200
MODES = (0, -1, 43101)
STATES = ("developer", "trial", "formal")
LANGS = ("zh_CN", "en_US", "zh_HK", "zh_TW")

_SYMBOLS = r"!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~"
_CHINESE = r"\u4e00-\u9fff\u3400-\u4dbf"
_CLOCK = r"([01]?\d|2[0-3]):[0-5]\d(:[0-5]\d)?"
_DAY = r"\d{4}年(0?[1-9]|1[0-2])月(0?[1-9]|[12]\d|3[01])日"
_ONE_TIME = rf"({_DAY} ?)?{_CLOCK}"
_ONE_DATE = rf"{_DAY}( ?{_CLOCK})?"
RULES = {  # type -> (max characters, the pattern the whole value must match), as WeChat's table
    "thing": (20, None),
    "number": (32, r"\d+(\.\d+)?"),
    "letter": (32, r"[A-Za-z]+"),
    "symbol": (5, rf"[{_SYMBOLS}]+"),
    "character_string": (32, rf"[A-Za-z0-9{_SYMBOLS}]+"),
    "time": (None, rf"{_ONE_TIME}(~{_ONE_TIME})?"),
    "date": (None, rf"{_ONE_DATE}(~{_ONE_DATE})?"),
    "amount": (None, r"[¥￥$]?(?=(?:\D*\d){1,10}\D*$)\d+(\.\d{1,2})?元?"),
    "phone_number": (17, rf"[0-9{_SYMBOLS}]+"),
    "car_number": (8, rf"[{_CHINESE}A-Za-z0-9][A-Za-z0-9]*[{_CHINESE}A-Za-z0-9]?"),
    "name": (None, None),  # below: 10 Chinese characters, or 20 letters or symbols
    "phrase": (5, rf"[{_CHINESE}]+"),
}
_PAGE = re.compile(r"/?[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*(\?[^\s#]*)?")
_KEY = re.compile(r"([a-z_]+?)[0-9]+")


def reset(state):
    state.messages = []        # accepted, as sent
    state.message_calls = []   # every send, with its answer
    state.messages_mode = {"errcode": 0, "count": None, "http": 200}
    state.stable_tokens = []   # every stable_token request
    state.wx_tokens = {}       # access_token -> expiry (epoch); voided ones removed


def field_problem(key, value):
    """None, or WeChat's complaint about one field."""
    m = _KEY.fullmatch(key)
    if not m or m.group(1) not in RULES:
        return f"argument invalid! data.{key} is not a field of this template"
    kind = m.group(1)
    if not isinstance(value, dict) or "value" not in value:
        return f"argument invalid! data.{key}.value is empty"
    v = value["value"]
    if not isinstance(v, str):
        return f"argument invalid! data.{key}.value is not a string"
    if not v.strip():
        return f"argument invalid! data.{key}.value is empty"
    if any(ord(c) < 32 for c in v):
        return f"argument invalid! data.{key}.value has a control character"
    limit, pattern = RULES[kind]
    if kind == "name":
        chinese = any(re.match(rf"[{_CHINESE}]", c) for c in v)
        ok = (len(v) <= 10 and re.fullmatch(rf"[{_CHINESE}A-Za-z]+", v)) if chinese else \
            (len(v) <= 20 and re.fullmatch(rf"[A-Za-z{_SYMBOLS} ]+", v))
        return None if ok else f"argument invalid! data.{key}.value is not a name"
    if limit is not None and len(v) > limit:
        return f"argument invalid! data.{key}.value exceeds limit ({kind}: {limit})"
    if pattern is not None and not re.fullmatch(pattern, v):
        return f"argument invalid! data.{key}.value is not a {kind}"
    return None


def register(app, state):
    """Add the subscribe messages to the sandbox app (state: app.py's State)."""

    def answer(errcode, errmsg, status=200):
        return jsonify({"errcode": errcode, "errmsg": f"{errmsg} rid: {secrets.token_hex(4)}"}), status

    def check(body):
        """(errcode, errmsg) WeChat answers a send with, before any mode."""
        if not isinstance(body, dict):
            return 47001, "data format error"
        touser, template = body.get("touser"), body.get("template_id")
        if not isinstance(touser, str) or not re.fullmatch(r"[A-Za-z0-9_\-]{6,64}", touser):
            return 40003, "invalid openid"
        if not isinstance(template, str) or not re.fullmatch(r"[A-Za-z0-9_\-]{1,64}", template):
            return 40037, "invalid template_id"
        page = body.get("page")
        if page is not None and (not isinstance(page, str) or (page and not _PAGE.fullmatch(page))):
            return 41030, "invalid page"
        if body.get("miniprogram_state", "formal") not in STATES:
            return 47003, "argument invalid! miniprogram_state"
        if body.get("lang", "zh_CN") not in LANGS:
            return 47003, "argument invalid! lang"
        data = body.get("data")
        if not isinstance(data, dict) or not data:
            return 47003, "argument invalid! data is empty"
        for key, value in data.items():
            problem = field_problem(key, value)
            if problem:
                return 47003, problem
        return 0, "ok"

    @app.post("/wechat/cgi-bin/message/subscribe/send")
    def subscribe_send():
        token = request.args.get("access_token")
        body = request.get_json(force=True, silent=True)
        with state.lock:
            if token is not None:
                expiry = state.wx_tokens.get(token)
                if expiry is None:
                    code, said = 40001, "invalid credential, access_token is invalid or not latest"
                elif expiry < time.time():
                    code, said = 42001, "access_token expired"
                else:
                    code, said = check(body)
            else:
                code, said = check(body)
            mode, status = state.messages_mode, 200
            if code == 0 and mode["errcode"] != 0:
                code = mode["errcode"]
                said = "system error" if code == -1 else "user refuse to accept the msg"
                status = mode.get("http") or 200
                if mode.get("count") is not None:
                    mode["count"] -= 1
                    if mode["count"] <= 0:
                        state.messages_mode = {"errcode": 0, "count": None, "http": 200}
            sent = {k: body.get(k) for k in ("touser", "template_id", "page", "data", "miniprogram_state", "lang")} \
                if isinstance(body, dict) else {"body": str(body)[:500]}
            sent.update(via="token" if token is not None else "open-api", at=time.time())
            state.message_calls.append({**sent, "errcode": code, "errmsg": said})
            if code == 0:
                state.messages.append(sent)
            state.save()
        headers = {} if token is not None else {"x-openapi-seqid": secrets.token_hex(8)}
        resp, status = answer(code, said, status if code == -1 else 200)
        resp.headers.update(headers)
        return resp, status

    @app.post("/wechat/cgi-bin/stable_token")
    def stable_token():
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict) or body.get("grant_type") != "client_credential":
            return answer(40002, "invalid grant_type")
        if not isinstance(body.get("appid"), str) or not body["appid"].startswith("wx"):
            return answer(40013, "invalid appid")
        if not isinstance(body.get("secret"), str) or not body["secret"]:
            return answer(40125, "invalid appsecret")
        force = body.get("force_refresh") is True
        now = time.time()
        with state.lock:
            state.stable_tokens.append({"appid": body["appid"], "force_refresh": force, "at": now})
            live = {t: exp for t, exp in state.wx_tokens.items() if exp > now}
            # Normal mode: the token still valid, until its last 5 minutes; forced: a new one,
            # and every earlier one void.
            current = max(live.items(), key=lambda kv: kv[1], default=None)
            if force or current is None or current[1] - now < 300:
                if force:
                    state.wx_tokens = {}
                token = "sbx_" + secrets.token_urlsafe(48)
                state.wx_tokens[token] = now + TOKEN_SECONDS
                current = (token, now + TOKEN_SECONDS)
            state.save()
        return jsonify({"access_token": current[0], "expires_in": int(current[1] - now)})

    def readable(items):  # the Chinese as written, not as \u escapes: people read these
        return Response(json.dumps(items, ensure_ascii=False), mimetype="application/json")

    @app.get("/wechat/_messages")
    def messages():
        return readable(state.messages)

    @app.get("/wechat/_message_calls")
    def message_calls():
        return readable(state.message_calls)

    @app.post("/wechat/_messages_mode")
    def messages_mode():
        body = request.get_json(force=True, silent=True)
        errcode = body.get("errcode") if isinstance(body, dict) else None
        count = body.get("count") if isinstance(body, dict) else None
        status = body.get("http", 200) if isinstance(body, dict) else 200
        if errcode not in MODES or isinstance(errcode, bool) or (count is not None and (
                not isinstance(count, int) or isinstance(count, bool) or not 0 < count <= 1000)) \
                or status not in (200, 500, 502, 503):
            return jsonify({"error": {"code": "invalid_mode", "message":
                                      'send {"errcode": 0 | -1 | 43101, "count": optional 1..1000, '
                                      '"http": optional 200 | 500 | 502 | 503}'}}), 400
        with state.lock:
            state.messages_mode = {"errcode": errcode, "count": count, "http": status}
            state.save()
        return jsonify(state.messages_mode)

    @app.post("/wechat/_expire_tokens")
    def expire_tokens():
        with state.lock:
            voided, state.wx_tokens = len(state.wx_tokens), {}
            state.save()
        return jsonify({"expired": voided})

    @app.get("/wechat/_stable_tokens")
    def stable_tokens():
        return jsonify(state.stable_tokens)
