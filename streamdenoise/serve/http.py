"""The service's HTTP port: health, readiness, Prometheus metrics, JSON API and dashboard.

=======================================  ====================================================
``GET /healthz``                         200 while the process runs (never asks for a token)
``GET /readyz``                          200 ``ready``, or 503 with one reason per line
``GET /metrics``                         Prometheus text format (prometheus_client)
``GET /api/cameras``                     JSON: every camera, the denoisers, readiness
``GET /api/cameras/NAME``                JSON: one camera
``GET /api/cameras/NAME/frame.jpg``      newest frame, ``?view=noisy`` for the input
``POST /api/reload``                     re-read the config file (like SIGHUP)
``GET /``                                the dashboard
=======================================  ====================================================

With ``http.token`` set, every endpoint but ``/healthz`` wants ``Authorization: Bearer
TOKEN``. Browsers get a one-field sign-in page instead, which stores the token in an
HttpOnly, SameSite=Strict cookie accepted for GET requests; changes (``POST``) need the
header. Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import sys
import threading
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from urllib.parse import parse_qs, unquote, urlsplit

from streamdenoise.errors import UserError
from streamdenoise.redact import redact, redact_obj
from streamdenoise.serve.config import HttpConfig
from streamdenoise.serve.telemetry import CONTENT_TYPE

log = logging.getLogger(__name__)

COOKIE = "streamdenoise_token"
REQUEST_TIMEOUT_S = 10.0
MAX_FORM_BYTES = 4096


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # a client that hung up before its answer was written (a probe that timed out, a
        # closed tab) is no fault of the service: no traceback in its log for that
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6


class HttpServer:
    def __init__(self, server, config: HttpConfig) -> None:
        self.server = server
        self.config = config
        self._token = config.token
        self._page = files("streamdenoise.serve").joinpath("dashboard.html").read_bytes()
        self._login_page = files("streamdenoise.serve").joinpath("login.html").read_bytes()
        server_class = _Server6 if ":" in config.bind else _Server
        try:
            self._httpd = server_class((config.bind.strip("[]"), config.port), self._handler())
        except OSError as err:
            raise UserError(
                f"cannot serve HTTP on {config.bind}:{config.port}: {err.strerror}"
            ) from None
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        host = self.config.bind.strip("[]")
        log.warning("serving on http://%s:%d/", f"[{host}]" if ":" in host else host, self.port)

    def close(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()

    def authorized(self, header: str | None, cookie: str | None, allow_cookie: bool) -> bool:
        if not self._token:
            return True
        candidates = []
        if header and header.startswith("Bearer "):
            candidates.append(header[len("Bearer ") :].strip())
        if allow_cookie and cookie:
            morsel = SimpleCookie(cookie).get(COOKIE)
            if morsel is not None:
                candidates.append(unquote(morsel.value))
        expected = self._token.encode()
        return any(hmac.compare_digest(c.encode(), expected) for c in candidates)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        web = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "streamdenoise-serve"
            timeout = REQUEST_TIMEOUT_S

            # -- plumbing ------------------------------------------------------------------
            def _send(self, status: int, kind: str, body: bytes, headers: dict | None = None):
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("X-Content-Type-Options", "nosniff")
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _json(self, status: int, doc) -> None:
                body = json.dumps(redact_obj(doc), indent=1, default=str).encode() + b"\n"
                self._send(status, "application/json", body)

            def _text(self, status: int, text: str) -> None:
                self._send(status, "text/plain; charset=utf-8", redact(text).encode())

            def _allowed(self, path: str, allow_cookie: bool) -> bool:
                if web.authorized(
                    self.headers.get("Authorization"), self.headers.get("Cookie"), allow_cookie
                ):
                    return True
                if path == "/" and self.command == "GET":
                    self._send(HTTPStatus.UNAUTHORIZED, "text/html; charset=utf-8", web._login_page)
                else:
                    self._send(
                        HTTPStatus.UNAUTHORIZED,
                        "text/plain; charset=utf-8",
                        b"unauthorized: send Authorization: Bearer TOKEN\n",
                        {"WWW-Authenticate": 'Bearer realm="streamdenoise"'},
                    )
                return False

            # -- routes ----------------------------------------------------------------------
            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                path = url.path.rstrip("/") or "/"
                if path == "/healthz":
                    return self._text(HTTPStatus.OK, "ok\n")
                if not self._allowed(path, allow_cookie=True):
                    return None
                if path == "/readyz":
                    reasons = web.server.unready()
                    if reasons:
                        return self._text(HTTPStatus.SERVICE_UNAVAILABLE, "\n".join(reasons) + "\n")
                    return self._text(HTTPStatus.OK, "ready\n")
                if path == "/metrics":
                    return self._send(HTTPStatus.OK, CONTENT_TYPE, web.server.telemetry.render())
                if path == "/":
                    return self._send(HTTPStatus.OK, "text/html; charset=utf-8", web._page)
                if path == "/api/cameras":
                    return self._json(HTTPStatus.OK, web.server.status())
                parts = path.split("/")
                if len(parts) in (4, 5) and parts[:3] == ["", "api", "cameras"]:
                    return self._camera(unquote(parts[3]), parts[4:], parse_qs(url.query))
                return self._text(HTTPStatus.NOT_FOUND, "not found\n")

            def _camera(self, name: str, rest: list[str], query: dict) -> None:
                status = web.server.camera_status(name)
                if status is None:
                    return self._text(HTTPStatus.NOT_FOUND, "no such camera\n")
                if not rest:
                    return self._json(HTTPStatus.OK, status)
                if rest == ["frame.jpg"]:
                    view = query.get("view", ["denoised"])[0]
                    jpeg = web.server.camera_jpeg(name, view)
                    if jpeg is None:
                        return self._text(HTTPStatus.NOT_FOUND, "no frame yet\n")
                    return self._send(HTTPStatus.OK, "image/jpeg", jpeg)
                return self._text(HTTPStatus.NOT_FOUND, "not found\n")

            def do_POST(self) -> None:
                path = urlsplit(self.path).path.rstrip("/")
                if path == "/login":
                    return self._login()
                if not self._allowed(path, allow_cookie=False):
                    return None
                if path == "/api/reload":
                    result = web.server.reload()
                    status = HTTPStatus.BAD_REQUEST if result.problems else HTTPStatus.OK
                    return self._json(status, {"summary": result.summary(), **vars(result)})
                return self._text(HTTPStatus.NOT_FOUND, "not found\n")

            def _login(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), MAX_FORM_BYTES)
                form = parse_qs(self.rfile.read(length).decode(errors="replace"))
                token = form.get("token", [""])[0]
                if not web.authorized(f"Bearer {token}", None, allow_cookie=False):
                    return self._send(
                        HTTPStatus.UNAUTHORIZED, "text/html; charset=utf-8", web._login_page
                    )
                cookie = SimpleCookie()
                cookie[COOKIE] = token
                morsel = cookie[COOKIE]
                morsel["httponly"] = True
                morsel["samesite"] = "Strict"
                morsel["path"] = "/"
                self.send_response(HTTPStatus.SEE_OTHER)
                self.send_header("Location", "/")
                self.send_header("Set-Cookie", morsel.OutputString())
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None

            def log_message(self, format: str, *args) -> None:
                log.debug("http: " + redact(format % args))

        return Handler
