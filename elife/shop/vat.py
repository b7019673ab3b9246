from ..validators import MAX_LENGTH, REGISTER_NO, normalize_register_no, valid_register_no  # noqa: F401 -- moved; for api/openapi.py
