"""Who may see the picture: one rule for every HTTP endpoint that serves video or stats.

Bound to a loopback address, an endpoint is reachable from this machine only and needs no
token. Bound anywhere else (``0.0.0.0``, a LAN address), a live camera picture would be open
to the network, so a token is required: requests carry it as ``?token=...`` (what a browser
can do) or ``Authorization: Bearer ...`` (what scripts and proxies do).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

from streamdenoise.errors import UsageError

#: Environment variable read when no ``--token`` is given (keeps it out of ``ps`` listings).
TOKEN_ENV = "STREAMDENOISE_TOKEN"
MIN_TOKEN_LENGTH = 16


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; False for anything reachable from outside."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def check_exposure(bind: str, token: str | None, what: str) -> None:
    """UsageError unless ``what`` bound to ``bind`` is loopback-only or protected by a token."""
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise UsageError(f"the token for {what} must be at least {MIN_TOKEN_LENGTH} characters")
    if not token and not is_loopback(bind):
        raise UsageError(
            f"{what} on {bind} would show the picture to the whole network: give --token "
            f"(or ${TOKEN_ENV}) so that only clients who know it get in, or --bind 127.0.0.1"
        )


def authorized(target: str, headers: Mapping[str, str], token: str | None) -> bool:
    """Whether a request for ``target`` (path + query) with ``headers`` may be served."""
    if not token:
        return True
    given = parse_qs(urlsplit(target).query).get("token", [])
    scheme, _, value = (headers.get("Authorization") or "").partition(" ")
    if scheme.lower() == "bearer":
        given.append(value.strip())
    expected = token.encode()
    return any(hmac.compare_digest(candidate.encode(), expected) for candidate in given)
