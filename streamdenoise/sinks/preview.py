"""``http://HOST:PORT/``: a browser preview of the denoised stream (MJPEG) with live stats.

Serves ``/`` (a small page), ``/stream.mjpg`` (multipart/x-mixed-replace JPEG) and ``/stats``
(JSON, credentials redacted) from a stdlib HTTP server on its own threads, bound to
``--bind`` (127.0.0.1 unless told otherwise). Each browser gets only the newest frame when it
is ready for one, so a slow or stuck client never holds up the pipeline or other clients.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from urllib.parse import urlsplit

import numpy as np

from streamdenoise.access import authorized, check_exposure
from streamdenoise.errors import SinkError
from streamdenoise.frame import Frame
from streamdenoise.options import SinkOptions
from streamdenoise.redact import redact, redact_obj
from streamdenoise.sinks.base import Sink

log = logging.getLogger(__name__)

BOUNDARY = "streamdenoise-frame"
JPEG_QUALITY = 80
#: A client that cannot take a frame for this long is disconnected.
CLIENT_TIMEOUT_S = 10.0


class _LatestJpeg:
    """The newest encoded frame and a condition that wakes clients when it changes."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.jpeg: bytes | None = None
        self.number = 0
        self.closed = False

    def publish(self, jpeg: bytes) -> None:
        with self.cond:
            self.jpeg, self.number = jpeg, self.number + 1
            self.cond.notify_all()

    def next_after(self, number: int, timeout: float) -> tuple[int, bytes | None]:
        with self.cond:
            self.cond.wait_for(lambda: self.number > number or self.closed, timeout)
            if self.closed or self.number <= number:
                return number, None
            return self.number, self.jpeg

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


class _QuietServer(ThreadingHTTPServer):
    """A browser that goes away mid-request is normal for a live view, not a traceback."""

    def handle_error(self, request, client_address) -> None:
        log.debug("preview client %s dropped", client_address[0], exc_info=True)


class PreviewSink(Sink):
    lossless = False

    def __init__(self, url: str, options: SinkOptions) -> None:
        parts = urlsplit(url)
        if parts.path not in ("", "/") or parts.port is None:
            raise SinkError(f"preview output must look like http://HOST:PORT/, not {redact(url)}")
        check_exposure(options.bind, options.token, "the preview")
        self.url = url
        self.compare = options.compare
        self._token = options.token
        self.address = (options.bind, parts.port)
        #: Set by the pipeline (if it offers one) to add its live figures to /stats.
        self.stats_provider: Callable[[], dict] | None = None
        self._latest = _LatestJpeg()
        self._clients = 0
        self._clients_lock = threading.Lock()
        self._frames = 0
        self._served = 0
        self._size: tuple[int, int] | None = None
        self._started = time.monotonic()
        self._page = files("streamdenoise.sinks").joinpath("preview.html").read_bytes()
        try:
            self._server = _QuietServer(self.address, self._handler_class())
        except OSError as err:
            raise SinkError(
                f"cannot serve the preview on {options.bind}:{parts.port}: {err.strerror}"
                " (is another program using that port? pick another with http://HOST:PORT/)"
            ) from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        self._thread.start()
        log.info("preview at http://%s:%d/", *self.address)

    # -- pipeline side ----------------------------------------------------------------------
    def open(self, first: Frame, fps: float | None) -> None:
        self._size = (first.width, first.height)

    def write(self, frame: Frame) -> None:
        import cv2

        self._frames += 1
        if not self._clients:
            return  # nobody watching: skip the JPEG encode
        image = frame.image
        if self.compare and frame.original is not None and frame.original.shape == image.shape:
            image = np.hstack([frame.original, image])
        ok, jpeg = cv2.imencode(
            ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        )
        if ok:
            self._latest.publish(jpeg.tobytes())

    def close(self) -> None:
        self._latest.close()
        self._server.shutdown()
        self._server.server_close()

    def describe(self) -> str:
        return f"preview http://{self.address[0]}:{self.address[1]}/"

    def stats(self) -> dict:
        return {
            "clients": self._clients,
            "frames_in": self._frames,
            "jpeg_frames_served": self._served,
        }

    def _count_client(self, delta: int) -> None:
        with self._clients_lock:
            self._clients += delta

    def _stats_document(self) -> dict:
        doc = {"preview": self.stats(), "uptime_s": round(time.monotonic() - self._started, 1)}
        if self._size:
            doc["size"] = f"{self._size[0]}x{self._size[1]}"
        if self.stats_provider is not None:
            doc["pipeline"] = self.stats_provider()
        return redact_obj(doc)

    # -- HTTP side ----------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "streamdenoise-preview"
            timeout = CLIENT_TIMEOUT_S

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if not authorized(self.path, self.headers, sink._token):
                    self.send_response(HTTPStatus.UNAUTHORIZED)
                    self.send_header("WWW-Authenticate", "Bearer")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif path == "/":
                    self._send(HTTPStatus.OK, "text/html; charset=utf-8", sink._page)
                elif path == "/stats":
                    body = json.dumps(sink._stats_document(), default=str).encode()
                    self._send(HTTPStatus.OK, "application/json", body)
                elif path == "/stream.mjpg":
                    self._stream()
                else:
                    self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")

            def _send(self, status: HTTPStatus, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def _stream(self) -> None:
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                sink._count_client(+1)
                number = 0
                try:
                    while True:
                        number, jpeg = sink._latest.next_after(number, CLIENT_TIMEOUT_S)
                        if jpeg is None:
                            if sink._latest.closed:
                                return
                            continue
                        head = (
                            f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                            f"Content-Length: {len(jpeg)}\r\n\r\n"
                        )
                        self.wfile.write(head.encode() + jpeg + b"\r\n")
                        sink._served += 1
                except OSError:
                    pass  # the browser went away or stopped reading
                finally:
                    sink._count_client(-1)

            def log_message(self, format: str, *args) -> None:
                log.debug("preview: " + format, *args)

        return Handler
