"""Mongolian phone numbers: normalise to the 8-digit national number, find the operator.

Source of the prefix table: the Communications Regulatory Commission of Mongolia's
2012 numbering plan (Unitel 88, 89; Mobicom 94, 95, 99; Skytel 90, 91, 96;
G-Mobile 93, 97, 98), with the later Unitel ranges 86 and 80. Adding an operator or a
range is a change to OPERATOR_PREFIXES only.
"""
import re

from ..errors import Invalid

OPERATOR_PREFIXES = {
    "UNITEL": ("80", "86", "88", "89"),
    "MOBICOM": ("94", "95", "99"),
    "SKYTEL": ("90", "91", "96"),
    "GMOBILE": ("93", "97", "98"),
}
# Operators we sell top-ups for; the others are known only to name them in errors.
SUPPORTED_OPERATORS = ("UNITEL",)

_SEPARATORS = re.compile(r"[\s\-().]")
_NATIONAL = re.compile(r"[0-9]{8}")


class PhoneError(Invalid):
    """invalid_phone_number, or phone_operator_mismatch (naming the number's operator)."""


def normalize(raw):
    """'+976 8888-8888' -> '88888888'. Raises PhoneError when it is not 8 digits."""
    if not isinstance(raw, str):
        raise PhoneError("invalid_phone_number", "phoneNumber must be a string")
    s = _SEPARATORS.sub("", raw.strip())
    if s.startswith("+976"):
        s = s[4:]
    elif s.startswith("00976"):
        s = s[5:]
    elif s.startswith("976") and len(s) == 11:
        s = s[3:]
    if not _NATIONAL.fullmatch(s):
        raise PhoneError("invalid_phone_number", "phoneNumber must be a Mongolian 8-digit number")
    return s


def operator_of(number):
    for operator, prefixes in OPERATOR_PREFIXES.items():
        if number[:2] in prefixes:
            return operator
    return None


def check_operator(raw, operator):
    """Normalise and check the number belongs to `operator`; returns the national number."""
    number = normalize(raw)
    actual = operator_of(number)
    if actual != operator:
        who = actual.title() if actual else "no known operator"
        raise PhoneError("phone_operator_mismatch",
                         f"this number belongs to {who}, not {operator.title()}")
    return number


def mask(number):
    """'88123456' -> '88****56': enough to tell numbers apart in a log, not to dial."""
    if not number:
        return ""
    s = str(number)
    if len(s) <= 4:
        return "*" * len(s)
    return s[:2] + "*" * (len(s) - 4) + s[-2:]
