"""Credential redaction: a camera password must never reach a terminal, log or JSON file.

What counts as a credential, and why each rule is shaped the way it is:

* **URL userinfo**, parsed the way FFmpeg parses it (``av_url_split``): the authority ends
  at the first ``/``, ``?`` or ``#`` and the userinfo runs to the *last* ``@`` before that,
  so a password that itself contains ``@`` (``rtsp://user:p@ss@host/``) goes entirely.
* **Query parameters** whose name looks like a credential (``password``, ``token``,
  ``auth``, ``sig``, ``secret``, ``apikey``, ``access_token``, SRT's ``passphrase`` and
  ``streamid``, ...): the value is replaced, the name kept so the message still makes sense.
* **RTMP stream keys**: ``rtmp://host/app/KEY`` publishes with the secret as the last path
  part; everything after the application name is replaced.
"""

from __future__ import annotations

import re

MASK = "***"

# scheme://userinfo@ — userinfo is everything up to the last '@' before '/', '?', '#' or a
# character that cannot be part of a URL in running text (whitespace, quotes, brackets).
_USERINFO = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/?#\s'\"<>()\[\]]*)@"
)
# Name fragments of query parameters that carry a secret (matched anywhere in the name).
SECRET_PARAM_WORDS = (
    "pass", "pwd", "token", "auth", "sig", "secret", "key", "cred", "session", "streamid",
    "ticket", "jwt", "hmac", "nonce",
)  # fmt: skip
_QUERY_SECRET = re.compile(
    r"(?i)(?P<key>[?&;][^=&;#\s'\"<>/?]*(?:"
    + "|".join(SECRET_PARAM_WORDS)
    + r")[^=&;#\s'\"<>/?]*=)[^&;#\s'\"<>]*"
)
# rtmp[s|t|e|te]://host[:port]/app/<stream key...>
_RTMP_KEY = re.compile(
    r"(?i)(?P<head>\brtmp[a-z]*://[^/\s'\"<>]+/[^/?#\s'\"<>]+/)(?P<key>[^?#\s'\"<>]+)"
)


def redact(text: str) -> str:
    """``text`` with every URL credential, secret query value and stream key as ``***``."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    text = _RTMP_KEY.sub(lambda m: f"{m['head']}{MASK}", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['key']}{MASK}", text)


def redact_obj(value):
    """Redact every string inside a JSON-like structure (dicts, lists, tuples), keys too."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_obj(k): redact_obj(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_obj(v) for v in value]
    return value
