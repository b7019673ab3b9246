"""Mongolian phone numbers: normalise to the 8-digit national number, find the operator.

The operator comes from Google's libphonenumber carrier data (the `phonenumbers`
package, kept up to date by the libphonenumber project as the numbering plan changes):
the number is parsed as MN, must be a valid number, and the carrier's English name is
mapped to our operator codes. OVERRIDES carries what we know and the installed data
does not (yet); each entry names its source, and a test fails when the library has come
to agree with an entry, so that it can go.
"""
import re

import phonenumbers
from phonenumbers import carrier

from ..errors import Invalid

# Operator codes, as orders and products name them, and how a person reads them.
OPERATOR_NAMES = {
    "UNITEL": "Unitel",
    "MOBICOM": "Mobicom",
    "SKYTEL": "Skytel",
    "GMOBILE": "G-Mobile",
    "ONDO": "ONDO",
}
OPERATOR_CODES = tuple(OPERATOR_NAMES)
# libphonenumber's carrier names (English) -> our codes.
CARRIER_CODES = {name: code for code, name in OPERATOR_NAMES.items()}

# The current plan by two-digit prefix, as issue 17 gives it (libphonenumber's data as
# read then, with the Mongolian regulator's 2012 plan behind it). Detection does not read
# this table -- the library and OVERRIDES do -- it documents the plan, and the tests
# check detection against every prefix in it.
OPERATOR_PREFIXES = {
    "UNITEL": ("50", "55", "80", "86", "88", "89"),
    "MOBICOM": ("85", "94", "95", "99"),
    "SKYTEL": ("69", "90", "91", "96"),
    "GMOBILE": ("83", "92", "93", "97", "98"),
    "ONDO": ("60", "66", "81"),
}

# Where we know better than the installed carrier data (phonenumbers 9.0.43): prefix ->
# (operator code, source). Longest prefix wins; an override also makes a number valid.
OVERRIDES = {
    # 9.0.43 gives 500-504 to Unitel but 505-509 to Mobicom.
    "50": ("UNITEL", "issue 17: Unitel customers with 50xxxxxx numbers turned away"),
    # 9.0.43 gives 550-554 to Unitel but 555-559 to Mobicom.
    "55": ("UNITEL", "issue 17: Unitel customers with 55xxxxxx numbers turned away"),
    # 9.0.43 has 920, 923, 929 as Skytel, 921 as G-Mobile and the rest of 92 as unallocated.
    "92": ("GMOBILE", "issue 17: the current plan gives 92 to G-Mobile"),
}
# Operators we sell top-ups for; the others are known only to name them in errors.
SUPPORTED_OPERATORS = ("UNITEL",)

_SEPARATORS = re.compile(r"[\s\-().]")
_NATIONAL = re.compile(r"[0-9]{8}")


class PhoneError(Invalid):
    """invalid_phone_number, or phone_operator_mismatch (naming the number's operator)."""


def normalize(raw):
    """'+976 8888-8888' -> '88888888'. Raises PhoneError when it is not 8 digits.

    Our own strict reading first (ASCII digits and a few separators only): the library's
    parser is lenient (letters as on a keypad, any Unicode digits), which is not what a
    customer's typed number should get."""
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


def override_for(number):
    for n in range(len(number), 0, -1):
        found = OVERRIDES.get(number[:n])
        if found:
            return found
    return None


def carrier_of(number):
    """(operator code or None, the carrier's name or None) for a national number, by
    OVERRIDES, then libphonenumber. Raises PhoneError when the number is not valid in the
    Mongolian plan."""
    found = override_for(number)
    if found:
        return found[0], OPERATOR_NAMES[found[0]]
    parsed = phonenumbers.parse(number, "MN")
    if not phonenumbers.is_valid_number(parsed):
        raise PhoneError("invalid_phone_number", "this is not a number in the Mongolian numbering plan")
    name = carrier.name_for_number(parsed, "en") or None
    return CARRIER_CODES.get(name), name


def operator_of(number):
    """Our operator code for a national number, or None (not valid, or no operator we name)."""
    try:
        return carrier_of(number)[0]
    except PhoneError:
        return None


def check_operator(raw, operator):
    """Normalise and check the number belongs to `operator`; returns the national number."""
    number = normalize(raw)
    actual, name = carrier_of(number)
    if actual != operator:
        who = name or "no known mobile operator"
        raise PhoneError("phone_operator_mismatch",
                         f"this number belongs to {who}, not {OPERATOR_NAMES.get(operator, operator)}")
    return number


def mask(number):
    """'88123456' -> '88****56': enough to tell numbers apart in a log, not to dial."""
    if not number:
        return ""
    s = str(number)
    if len(s) <= 4:
        return "*" * len(s)
    return s[:2] + "*" * (len(s) - 4) + s[-2:]
