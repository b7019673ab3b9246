"""Our values fitted to the field types of a WeChat subscribe message. Pure functions.

A template names its fields by type and position (`thing1`, `amount2`,
`character_string3`, `time4`, `phrase5`), and WeChat refuses the whole message (47003)
when one value breaks its type's rule. The rules (developers.weixin.qq.com,
subscribeMessage.send, 订阅消息参数值内容限制说明):

| type             | what WeChat takes                                                      |
|------------------|------------------------------------------------------------------------|
| thing            | up to 20 characters: Chinese, digits, letters, symbols                 |
| number           | up to 32 digits, a decimal point allowed                               |
| letter           | up to 32 letters                                                       |
| symbol           | up to 5 symbols                                                        |
| character_string | up to 32 digits, letters or symbols                                    |
| time             | a 24-hour time, the date before it allowed: 15:01, 2019年10月1日 15:01   |
| date             | a date, the time after it allowed: 2019年10月1日, 2019年10月1日 15:01      |
| amount           | a currency sign, up to 10 digits with a decimal point, 元 at the end    |
| phone_number     | up to 17 digits and symbols: +86-0766-66888866                         |
| car_number       | up to 8: Chinese first and last allowed, letters or digits between     |
| name             | up to 10 Chinese characters, or up to 20 letters or symbols            |
| phrase           | up to 5 Chinese characters, nothing else                               |

"Letters" and "symbols" are read as ASCII's: WeChat does not say whether Cyrillic is a
letter, so a Mongolian name goes into the strict types in Latin letters (the 2012
national standard, ö and ü written o and u); `thing` keeps it as written.

What can be said (the VALUE of `notify template set ... --field KEY=VALUE`): `phone`
(masked), `product`, `amount`, `time` (China time), `reason`, `order`. Each goes into
the types where it can mean something; elsewhere `fit` raises Unfit, and the template is
refused when it is configured rather than every message later:

| value   | thing | character_string | number | amount | time, date | phone_number | phrase |
|---------|-------|------------------|--------|--------|------------|--------------|--------|
| phone   | yes   | yes              |        |        |            | yes          |        |
| product | yes   | yes (Latin)      |        |        |            |              |        |
| amount  | yes   | yes (CNY12.34)   | yes    | yes    |            |              |        |
| time    | yes   | yes              |        |        | yes        |              |        |
| reason  | yes   |                  |        |        |            |              | yes    |
| order   | yes   | yes              | yes    |        |            |              |        |
"""
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

VALUES = ("phone", "product", "amount", "time", "reason", "order")
TYPES = ("thing", "number", "letter", "symbol", "character_string", "time", "date", "amount",
         "phone_number", "car_number", "name", "phrase")
KINDS = ("recharged", "failed_refunded", "refunded")

THING_MAX, STRING_MAX, PHRASE_MAX, PHONE_MAX, AMOUNT_DIGITS = 20, 32, 5, 17, 10
CHINA = timezone(timedelta(hours=8))  # no daylight saving since 1991
_KEY = re.compile(r"([a-z_]+?)([0-9]+)")
_ASCII_SYMBOLS = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
_STRING_OK = re.compile(r"[A-Za-z0-9" + re.escape(_ASCII_SYMBOLS) + r"]+")


class Unfit(ValueError):
    """A value that cannot be said in a field of that type (or a key WeChat has no type for)."""


@dataclass(frozen=True)
class Words:
    """Something said in words: a sentence for `thing`, at most five Chinese characters
    for `phrase`."""
    text: str
    phrase: str


@dataclass(frozen=True)
class Content:
    """What one message is about, before fitting."""
    phone: str          # the national number; only ever sent masked
    product: str        # the product's name, as the catalogue has it
    amount_fen: int
    time: datetime      # naive UTC: when the top-up landed, failed, or the refund came back
    reason: Words
    order: str


# Unitel's refusals (clients/unitel.py REFUSALS), in a few Chinese words.
REFUSAL_WORDS = {
    "101": "号码未开通服务",
    "102": "套餐不适用该号码",
    "103": "套餐价格已变",
    "104": "号码已停机",
}
FAILED_WORDS = "充值未成功"


def reason_for(kind, refusal_code=None):
    """The `reason` said in a message of `kind` (a Unitel refusal code for failed_refunded)."""
    if kind == "recharged":
        return Words("充值成功", "充值成功")
    if kind == "failed_refunded":
        why = REFUSAL_WORDS.get(str(refusal_code or ""), FAILED_WORDS)
        return Words(f"{why}，款项将原路退回", "退款中")
    if kind == "refunded":
        return Words("款项已原路退回", "已退款")
    raise ValueError(f"no such kind: {kind}")


def field_type(key):
    """'thing1' -> 'thing', 'character_string3' -> 'character_string'; Unfit for a key that
    names no type WeChat has."""
    m = _KEY.fullmatch(key or "")
    if not m or m.group(1) not in TYPES:
        raise Unfit(f"{key!r} is not a field key (a type followed by digits: thing1, amount2, ...; "
                    f"types: {', '.join(TYPES)})")
    return m.group(1)


def data(field_map, content):
    """{key: value name} and the Content -> subscribeMessage.send's `data`."""
    return {key: {"value": fit(key, name, content)} for key, name in field_map.items()}


def fit(key, value_name, content):
    """The value named `value_name` of `content`, as a field `key` takes it."""
    kind = field_type(key)
    if value_name not in VALUES:
        raise Unfit(f"{value_name!r} is not a value (one of {', '.join(VALUES)})")
    fitter = _FITTERS.get((kind, value_name))
    if fitter is None:
        raise Unfit(f"{value_name} cannot be said in a {kind} field ({key})")
    out = fitter(content)
    if not out:
        raise Unfit(f"{value_name} is empty in {key}")  # WeChat: "data.<key>.value is empty"
    return out


def fits(key, value_name):
    """None when `value_name` can go into `key`, else why not (for configuring a template)."""
    try:
        fit(key, value_name, SAMPLE)
    except Unfit as exc:
        return str(exc)
    return None


# -- values as text -------------------------------------------------------------------------

def masked_phone(number):
    """'88123456' -> '88****56': the customer knows their number; a screenshot shows less."""
    s = re.sub(r"\D", "", str(number or ""))
    if len(s) <= 4:
        return "*" * len(s)
    return s[:2] + "*" * (len(s) - 4) + s[-2:]


def yuan(fen, sign=""):
    """1 -> '0.01', 999999 -> '9999.99' (integer fen, no float)."""
    if not isinstance(fen, int) or isinstance(fen, bool) or fen < 0:
        raise Unfit(f"an amount must be whole fen, not {fen!r}")
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def china_time(utc):
    """Naive UTC -> 'YYYY年MM月DD日 HH:mm', China time (the customer's clock)."""
    local = utc.replace(tzinfo=timezone.utc).astimezone(CHINA)
    return local.strftime("%Y年%m月%d日 %H:%M")


def _amount(content):
    text = yuan(content.amount_fen)
    if sum(c.isdigit() for c in text) > AMOUNT_DIGITS:
        raise Unfit(f"{text} has more than {AMOUNT_DIGITS} digits")
    return text + "元"


def _clean(text):
    """One line of what may be shown: no control or format characters, no characters
    outside the BMP (emoji: WeChat refuses some), whitespace runs as one space."""
    kept = "".join(" " if c.isspace() else c for c in unicodedata.normalize("NFC", str(text or ""))
                   if c.isspace() or (ord(c) <= 0xFFFF and not unicodedata.category(c).startswith("C")))
    return " ".join(kept.split())


def cut(text, limit):
    """At most `limit` characters; a cut one ends with an ellipsis, so it reads as cut."""
    text = _clean(text)
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


# Mongolian Cyrillic in Latin letters (MNS 5217:2012, ASCII: ө o, ү u), and Russian's extra.
_LATIN = dict(zip("абвгдеёжзийклмнопрстуфхцчшщъыьэюяөү",
                  ["a", "b", "v", "g", "d", "ye", "yo", "j", "z", "i", "i", "k", "l", "m", "n", "o", "p",
                   "r", "s", "t", "u", "f", "kh", "ts", "ch", "sh", "shch", "", "y", "i", "e", "yu", "ya",
                   "o", "u"]))


def latin(text):
    """Cyrillic spelled in Latin letters; accents dropped; what is left outside ASCII goes."""
    out = []
    for c in _clean(text):
        low = c.lower()
        if low in _LATIN:
            t = _LATIN[low]
            out.append(t.capitalize() if c != low else t)
        else:
            out.append(c)
    decomposed = unicodedata.normalize("NFKD", "".join(out))
    return "".join(c for c in decomposed if c.isascii() and c.isprintable())


def ascii_string(text, limit=STRING_MAX):
    """Letters, digits and ASCII symbols only (spaces as `_`), at most `limit`."""
    s = "_".join(latin(text).split())
    s = "".join(_STRING_OK.findall(s))
    return s[:limit].rstrip("_")


def _is_chinese(c):
    return "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf"


def _phrase(words):
    s = _clean(words.phrase)
    if not s or len(s) > PHRASE_MAX or not all(_is_chinese(c) for c in s):
        raise Unfit(f"{words.phrase!r} is not at most {PHRASE_MAX} Chinese characters")
    return s


_FITTERS = {
    ("thing", "phone"): lambda c: cut("+976 " + masked_phone(c.phone), THING_MAX),
    ("thing", "product"): lambda c: cut(c.product, THING_MAX),
    ("thing", "amount"): lambda c: cut(_amount(c), THING_MAX),
    ("thing", "time"): lambda c: china_time(c.time),
    ("thing", "reason"): lambda c: cut(c.reason.text, THING_MAX),
    ("thing", "order"): lambda c: cut(c.order, THING_MAX),
    ("character_string", "phone"): lambda c: ascii_string(masked_phone(c.phone)),
    ("character_string", "product"): lambda c: ascii_string(c.product),
    ("character_string", "amount"): lambda c: ascii_string(yuan(c.amount_fen, "CNY")),
    ("character_string", "time"): lambda c: ascii_string(
        c.time.replace(tzinfo=timezone.utc).astimezone(CHINA).strftime("%Y-%m-%d %H:%M")),
    ("character_string", "order"): lambda c: ascii_string(c.order),
    ("number", "amount"): lambda c: yuan(c.amount_fen),
    ("number", "order"): lambda c: re.sub(r"\D", "", c.order)[:STRING_MAX],
    ("time", "time"): lambda c: china_time(c.time),
    ("date", "time"): lambda c: china_time(c.time),
    ("amount", "amount"): _amount,
    ("phone_number", "phone"): lambda c: ("+976-" + masked_phone(c.phone))[:PHONE_MAX],
    ("phrase", "reason"): lambda c: _phrase(c.reason),
}

SAMPLE = Content(phone="88123456", product="Unitel voice credit 5,000₮", amount_fen=1050,
                 time=datetime(2026, 1, 18, 2, 0), reason=reason_for("failed_refunded", "101"),
                 order="ORD20260118100000000000001")
