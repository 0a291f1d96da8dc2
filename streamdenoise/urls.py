"""Network URL checks done before any thread starts, so a typo is one line and exit code 2.

``urllib`` raises ``ValueError`` for a port out of range only when ``.port`` is read, which
used to happen deep inside a worker thread; FFmpeg says "Invalid argument" at best.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from streamdenoise.errors import UsageError
from streamdenoise.redact import redact

#: Schemes whose URL must name a host (udp:// and srt:// may listen on every interface).
HOST_REQUIRED = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https")


def check_url(url: str, role: str) -> None:
    """Raise UsageError when ``url`` cannot work: no host where one is needed, a bad port.

    ``role`` names the URL in the message ("source", "output").
    """
    try:
        parts = urlsplit(url)
    except ValueError as err:  # e.g. "Invalid IPv6 URL"
        raise UsageError(f"bad {role} {redact(url)}: {err}") from None
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise UsageError(f"bad {role} {redact(url)}: the port must be 1-65535")
    if scheme in HOST_REQUIRED and not parts.hostname:
        raise UsageError(f"bad {role} {redact(url)}: no host name")


def with_query_defaults(url: str, defaults: dict[str, str]) -> str:
    """``url`` with ``defaults`` added to its query string, keeping any value the URL gives.

    FFmpeg protocols (udp, srt) read their options from the URL; options handed to an
    output container never reach the protocol (PyAV opens it without them).
    """
    parts = urlsplit(url)
    given = dict(parse_qsl(parts.query, keep_blank_values=True))
    extra = {k: v for k, v in defaults.items() if k not in given}
    if not extra:
        return url
    query = "&".join(q for q in (parts.query, urlencode(extra)) if q)
    return urlunsplit(parts._replace(query=query))
