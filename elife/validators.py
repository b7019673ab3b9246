"""Checks of a value that more than one layer makes (config, shop/, api/, the CLI), kept
below all of them: the VAT register number and the name a person gives for the audit trail.

The buyer's register number on a VAT e-receipt (e-barimt): an order's optional
`vatRegisterNo` (or UNITEL_VAT_REGISTER_NO), sent to Unitel as `vat_register_no`.

Accepted forms (our choice, as no Unitel document says which it takes):
  - 7 digits: a company's (legal entity's) state register number, the form a business
    customer writes on an e-barimt receipt;
  - 2 Cyrillic capitals and 8 digits (УБ12345678): a citizen's register number, which a
    sole trader uses.
Source: Mongolia's state registration gives a legal entity a 7-digit register number
and a citizen a 10-character one (2 Cyrillic letters, 8 digits). Which forms Unitel's
`vat_register_no` takes is not documented (its client in the rebuilt system passes a
string through), so other taxpayer-number forms are refused until Unitel says it takes
them. Lower-case letters are made capitals; nothing else is changed.
"""
import re

# Mongolian Cyrillic capitals: the Russian alphabet with Ё, plus Ө and Ү.
REGISTER_NO = re.compile(r"[0-9]{7}|[А-ЯЁӨҮ]{2}[0-9]{8}")
MAX_LENGTH = 10


def normalize_register_no(value):
    """The register number as sent to Unitel, or None when it is not one of the forms."""
    if not isinstance(value, str):
        return None
    value = value.strip().upper()
    return value if REGISTER_NO.fullmatch(value) else None


def valid_register_no(value):
    return normalize_register_no(value) is not None


NAME_MAX = 40
_NAME_OK = re.compile(r"[^\W_][\w .@'-]*", re.UNICODE)


def clean_name(raw):
    """The name a person on duty typed (the admin page's forms, a command's --by), tidied
    for the audit trail; '' when unusable."""
    name = " ".join(str(raw or "").split())[:NAME_MAX]
    return name if _NAME_OK.fullmatch(name) else ""
