"""Credential redaction: a camera password must never reach a terminal, log or JSON file."""

from __future__ import annotations

import re

# scheme://user:pass@host  or  scheme://user@host  (the userinfo part of any URL)
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")
# password=... / passwd=... / pass=... query parameters some cameras use
_QUERY_SECRET = re.compile(r"(?i)(?P<key>[?&;](?:password|passwd|pass|pwd|token|key)=)[^&\s]*")


def redact(text: str) -> str:
    """Replace URL credentials in ``text`` with ``***``; keeps user names out too."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}***@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['key']}***", text)


def redact_obj(value):
    """Redact every string inside a JSON-like structure (dicts, lists, tuples)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_obj(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_obj(v) for v in value]
    return value
