"""The sandbox's fake Unitel, in the wire format of elife/clients/unitel.py's docstring:
login (/unitel/auth), the package list (servicetype), the top-ups (recharge, datapackage)
and the status query the real API lacks; and the control endpoints that play it (_mode,
_price, _expire_tokens, _calls, _log), described in docs/design.md.
"""
import secrets
import socket
import time
from decimal import Decimal

from flask import jsonify, request

from ..config import SANDBOX_STATUS_PATH

MODES = ("success", "fail", "slow", "timeout", "5xx", "unknown", "drop")


# The refusals this fake operator answers with (elife/clients/unitel.py: REFUSALS).
REFUSALS = {"101": "the number is not in service", "102": "the package is not allowed for this number",
            "103": "the amount is not the package's price", "104": "the number is barred"}


def _item(section, group, name, eng_name, price, data, days):
    return {"section": section, "group": group, "name": name, "eng_name": eng_name, "price": price,
            "unit": "GB" if data else "₮", "data": data, "days": days}


# The fake operator's packages, offered to every number (POST /unitel/_price changes
# them): cards are credit (our VOICE), data packages our DATA.
CATALOGUE = {
    "SD1000": _item("cards", "day", "Нэгж 1,000₮", "Credit 1,000₮", 1000, "", 7),
    "SD2000": _item("cards", "day", "Нэгж 2,000₮", "Credit 2,000₮", 2000, "", 15),
    "SD3000": _item("cards", "day", "Нэгж 3,000₮", "Credit 3,000₮", 3000, "", 30),
    "SD5000": _item("cards", "day", "Нэгж 5,000₮", "Credit 5,000₮", 5000, "", 30),
    "SD10000": _item("cards", "day", "Нэгж 10,000₮", "Credit 10,000₮", 10000, "", 60),
    "SD20000": _item("cards", "day", "Нэгж 20,000₮", "Credit 20,000₮", 20000, "", 90),
    "ND500": _item("cards", "noday", "Нэгж 500₮ хугацаагүй", "Credit 500₮, no expiry", 500, "", None),
    "SP15000": _item("cards", "special", "Онцгой нэгж 15,000₮", "Special credit 15,000₮", 15000, "", 45),
    "data1gb7d": _item("data", "data", "Дата 1GB 7 хоног", "Data 1 GB, 7 days", 3000, "1GB", 7),
    "data5gb30d": _item("data", "data", "Дата 5GB 30 хоног", "Data 5 GB, 30 days", 10000, "5GB", 30),
    "data20gb30d": _item("data", "data", "Дата 20GB 30 хоног", "Data 20 GB, 30 days", 25000, "20GB", 30),
    "data3gb2d": _item("data", "days", "Дата 3GB 2 хоног", "Data 3 GB, 2 days", 2500, "3GB", 2),
    "youtube10gb": _item("data", "entertainment", "YouTube 10GB 30 хоног", "YouTube 10 GB, 30 days", 8000,
                         "10GB", 30),
}


def register(app, state, settings):
    """Add the fake operator to the sandbox app (state: app.py's State)."""
    slow_delay = settings.UNITEL_READ_TIMEOUT / 3
    timeout_delay = settings.UNITEL_READ_TIMEOUT + 1.0

    def unitel_answer(status, **body):
        return jsonify(body), status

    def unauthorized():
        return unitel_answer(401, result="401", msg="Unauthorized", code="401")

    def note_call(auth, body, status):
        with state.lock:
            state.calls.append({"path": request.path[len("/unitel"):], "auth": auth, "body": body,
                                "status": status, "at": time.time()})
            state.save()

    @app.post("/unitel/auth")
    def unitel_auth():
        creds = request.authorization
        ok = creds is not None and creds.type == "basic" and bool(creds.username) and bool(creds.password)
        note_call(f"basic:{creds.username}" if ok else "none", None, 200 if ok else 401)
        if not ok:
            return unauthorized()
        token = secrets.token_urlsafe(24)
        with state.lock:
            state.tokens[token] = time.monotonic() + 3600
        return jsonify({"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    def bearer_ok():
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return False
        token = header[len("Bearer "):]
        with state.lock:
            if token in state.expired:  # _expire_tokens: this token's next use is its last
                state.expired.discard(token)
                state.tokens.pop(token, None)
                return False
            return state.tokens.get(token, 0) > time.monotonic()

    def service_body():
        body = request.get_json(force=True, silent=True)
        return body if isinstance(body, dict) else {}

    def offered(msisdn):
        """The number's list: {code: item} with the prices _price set (None: not offered)."""
        items = {code: dict(item) for code, item in CATALOGUE.items()}
        items.update({code: dict(item) for code, item in state.extra.items()})
        for overrides in (state.prices, state.prices_for.get(msisdn, {})):
            for code, price in overrides.items():
                if code in items:
                    items[code]["price"] = price
        return {code: item for code, item in items.items() if item["price"] is not None}

    @app.post("/unitel/service/servicetype")
    def unitel_servicetype():
        body = service_body()
        if not bearer_ok():
            note_call("bearer", body, 401)
            return unauthorized()
        msisdn = str(body.get("msisdn", ""))
        mode = state.servicetype_mode
        note_call("bearer", body, 500 if mode == "5xx" else 200)
        if mode == "5xx":
            return "<html><body>502 Bad Gateway</body></html>", 500
        if mode == "timeout":
            time.sleep(timeout_delay)
        elif mode == "drop":
            return drop_connection()
        elif mode == "fail":
            return unitel_answer(200, result="failed", code="101", msg="the number is not in service")
        service = {"cards": {g: [] for g in ("day", "noday", "special")},
                   "data": {g: [] for g in ("data", "days", "entertainment")}}
        with state.lock:
            items = offered(msisdn)
        for code, item in items.items():
            service[item["section"]][item["group"]].append(
                {"code": code, **{k: item[k] for k in ("name", "eng_name", "price", "unit", "data", "days")}})
        return jsonify({"servicetype": "PREPAID", "msisdn": msisdn, "service": service})

    def drop_connection():
        sock = request.environ.get("werkzeug.socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            finally:
                sock.close()
        return "", 204

    def vat_block(price):
        amount = Decimal(price).quantize(Decimal("0.01"))
        vat = (amount / 11).quantize(Decimal("0.01"))  # 10 % VAT inside the price
        digits = "".join(secrets.choice("0123456789") for _ in range(33))
        return {
            "billId": "000" + digits[:30], "amount": str(amount), "cashAmount": "0.00",
            "nonCashAmount": str(amount), "vat": str(vat), "cityTax": "0.00",
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "internalCode": digits[:12],
            "lottery": f"{secrets.choice('ABCDEFGHKLMNPRSTUX')}{secrets.choice('ABCDEFGHKLMNPRSTUX')} {digits[:8]}",
            "merchantId": "sandbox-merchant", "qrData": digits * 3,
            "stocks": [{"code": "topup", "name": "Unitel top-up", "measureUnit": "ш", "qty": "1.00",
                        "unitPrice": str(amount), "totalAmount": str(amount), "vat": str(vat),
                        "barCode": "", "cityTax": "0.00"}],
        }

    def topup(kind):
        """/service/recharge (a card) and /service/datapackage (a package)."""
        body = service_body()
        if not bearer_ok():  # refused before anything is looked at: not logged, not done
            note_call("bearer", body, 401)
            return unauthorized()
        msisdn = str(body.get("msisdn", ""))
        code = body.get(kind)
        txs = body.get("transactions")
        tx = txs[0] if isinstance(txs, list) and txs and isinstance(txs[0], dict) else {}
        jid, amount = tx.get("journal_id"), tx.get("amount")
        mode = state.mode_for.get(msisdn, state.mode)
        note_call("bearer", body, 500 if mode == "5xx" else 200)
        if mode == "5xx":  # a gateway failing in front of the operator: nothing reaches it
            return "<html><body>502 Bad Gateway</body></html>", 500
        with state.lock:
            state.log.append({"requestId": jid, "msisdn": msisdn, kind: code, "amount": amount,
                              "vatflag": body.get("vatflag"), "vat_register_no": body.get("vat_register_no"),
                              "path": request.path[len("/unitel"):], "mode": mode, "at": time.time()})
            if not jid:
                state.save()
                return unitel_answer(400, result="failed", code="400", msg="transactions[0].journal_id is required")
            if jid in state.topups:
                state.save()
                return unitel_answer(200, result="failed", code="409", msg="duplicate journal_id")
            item = offered(msisdn).get(code)
            section = "cards" if kind == "card" else "data"
            if mode == "fail":
                refusal = (state.fail_code, REFUSALS.get(state.fail_code, "refused"))
            elif item is None or item["section"] != section:
                refusal = ("102", f"{code} is not allowed for this number")
            elif str(amount) != str(item["price"]):
                refusal = ("103", f"the amount is not the price of {code} ({item['price']})")
            else:
                refusal = None
            vat = vat_block(item["price"]) if refusal is None and body.get("vatflag") == "1" else None
            state.topups[jid] = {"status": "FAILED" if refusal else "SUCCESS",
                                 "code": refusal[0] if refusal else "000", "vat": vat}
            state.save()
        if refusal:
            return unitel_answer(200, result="failed", code=refusal[0], msg=refusal[1])
        if mode == "slow":
            time.sleep(state.delay_for.get(msisdn, state.delay_for.get("", slow_delay)))
        elif mode == "timeout":
            time.sleep(timeout_delay)
        elif mode == "drop":
            return drop_connection()
        elif mode == "unknown":
            return unitel_answer(200, result="pending", code="777", msg="processing")
        answer = {"result": "success", "code": "000", "msg": "Амжилттай", "sv_id": secrets.token_hex(6),
                  "seq": str(len(state.topups)), "method": "cash"}
        if vat is not None:
            answer["vat"] = vat
        return jsonify(answer)

    @app.post("/unitel/service/recharge")
    def unitel_recharge():
        return topup("card")

    @app.post("/unitel/service/datapackage")
    def unitel_datapackage():
        return topup("package")

    @app.post("/unitel" + SANDBOX_STATUS_PATH)
    def unitel_status():
        """The status query the real API lacks (UNITEL_STATUS_PATH in development)."""
        body = service_body()
        if not bearer_ok():
            note_call("bearer", body, 401)
            return unauthorized()
        jid = body.get("journal_id")
        t = state.topups.get(jid)
        note_call("bearer", body, 200 if t else 404)
        if t is None:
            return unitel_answer(404, result="failed", code="404", msg="journal_id not found")
        answer = {"result": "success", "code": t["code"], "msg": "", "journal_id": jid, "status": t["status"]}
        if t["vat"] is not None:
            answer["vat"] = t["vat"]
        return jsonify(answer)

    @app.post("/unitel/_expire_tokens")
    def unitel_expire_tokens():
        with state.lock:
            state.expired = set(state.tokens)
        return jsonify({"expired": len(state.expired)})

    @app.post("/unitel/_price")
    def unitel_price():
        """{"code", "price"}: the operator's price for a package from now on (for one
        "msisdn", or all numbers); "price": null stops offering it. A code it does not sell
        is added (as a card, or a data package with "type": "DATA")."""
        body = request.get_json(force=True, silent=True)
        price = body.get("price", "missing") if isinstance(body, dict) else "missing"
        code = body.get("code") if isinstance(body, dict) else None
        if not isinstance(code, str) or not code or not (price is None or (isinstance(price, int) and price >= 0)):
            return jsonify({"error": {"code": "invalid_price",
                                      "message": 'send {"code": "...", "price": MNT or null}'}}), 400
        with state.lock:
            if code not in CATALOGUE and code not in state.extra:
                data = body.get("type") == "DATA"
                state.extra[code] = {"section": "data" if data else "cards", "group": "data" if data else "special",
                                     "name": f"Sandbox {code}", "eng_name": f"Sandbox {code}", "price": price,
                                     "unit": "GB" if data else "₮", "data": "1GB" if data else "", "days": 30}
            if body.get("msisdn"):
                state.prices_for.setdefault(str(body["msisdn"]), {})[code] = price
            else:
                state.prices[code] = price
            state.save()
        return jsonify({"code": code, "price": price, "msisdn": body.get("msisdn")})

    @app.get("/unitel/_calls")
    def unitel_calls():
        return jsonify(state.calls)

    @app.get("/unitel/_log")
    def unitel_log():
        return jsonify(state.log)

    @app.post("/unitel/_mode")
    def unitel_mode():
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict) or body.get("mode") not in MODES:
            return jsonify({"error": {"code": "invalid_mode", "message": f"mode must be one of {MODES}"}}), 400
        delay = body.get("delay")
        if delay is not None and (not isinstance(delay, (int, float)) or isinstance(delay, bool)
                                  or not 0 <= delay <= 600):
            return jsonify({"error": {"code": "invalid_delay", "message": "delay: seconds, 0 to 600"}}), 400
        who = str(body["msisdn"]) if body.get("msisdn") else None
        with state.lock:
            if body["mode"] == "fail" and body.get("code") in REFUSALS:
                state.fail_code = body["code"]  # which refusal `fail` answers with (default 101)
            if body.get("call") == "servicetype":  # the package list, not the top-ups
                state.servicetype_mode = body["mode"]
            elif who:
                state.mode_for[who] = body["mode"]
            else:
                state.mode = body["mode"]
            if body.get("call") != "servicetype":
                if delay is not None:
                    state.delay_for[who or ""] = delay
                else:
                    state.delay_for.pop(who or "", None)
            state.save()
        return jsonify({"mode": state.mode, "modeFor": state.mode_for, "servicetype": state.servicetype_mode})
