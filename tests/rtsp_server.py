"""A real RTSP server for the live tests, run by the system Python with GStreamer.

It serves, on 127.0.0.1 only:

* ``/cam``  — a live H.264 "camera": a moving test pattern with sensor-like noise blended in,
  encoded by x264 (zerolatency) at the requested size and rate;
* ``/push`` — a RECORD mount (what MediaMTX offers to publishers): every publishing session
  is depayloaded and written unchanged to ``RECORD_DIR/push-<n>.ts`` (MPEG-TS needs no
  finalizing, so a file is readable even when the publisher vanishes).

Optional basic auth (``--user``/``--password``) protects both mounts. The script prints
``READY <port>`` on stdout once it listens and runs until SIGTERM/SIGINT.

Usage: /usr/bin/python3 tests/rtsp_server.py --port 8554 [--size 320x240] [--fps 25]
       [--record-dir DIR] [--user U --password P]
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

ROLE = "user"


def camera_launch(width: int, height: int, fps: int) -> str:
    caps = f"video/x-raw,width={width},height={height},framerate={fps}/1"
    return (
        "( compositor name=mix sink_1::alpha=0.25 ! videoconvert ! video/x-raw,format=I420 ! "
        f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} bitrate=4000 ! "
        "rtph264pay name=pay0 pt=96 config-interval=1 "
        f"videotestsrc is-live=true pattern=smpte horizontal-speed=4 ! {caps} ! mix.sink_0 "
        f"videotestsrc is-live=true pattern=snow ! {caps} ! mix.sink_1 )"
    )


def record_factory(record_dir: str) -> GstRtspServer.RTSPMediaFactory:
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
    factory.set_launch(
        "( rtph264depay name=depay0 ! h264parse config-interval=-1 ! "
        "mpegtsmux ! filesink name=out sync=false buffer-mode=unbuffered )"
    )
    factory.set_latency(100)
    counter = itertools.count(1)

    def on_configure(_factory, media):
        path = os.path.join(record_dir, f"push-{os.getpid()}-{next(counter)}.ts")
        media.get_element().get_by_name("out").set_property("location", path)
        print(f"RECORDING {path}", flush=True)

    factory.connect("media-configure", on_configure)
    return factory


def protect(server, factories, user: str, password: str) -> None:
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", ROLE)
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)
    role = Gst.Structure.from_string(
        f"{ROLE}, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
    )[0]
    for factory in factories:
        factory.add_role_from_structure(role)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--record-dir", default=None)
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()

    camera = GstRtspServer.RTSPMediaFactory()
    camera.set_launch(camera_launch(width, height, args.fps))
    camera.set_shared(True)
    mounts.add_factory("/cam", camera)
    factories = [camera]
    if args.record_dir:
        recorder = record_factory(args.record_dir)
        mounts.add_factory("/push", recorder)
        factories.append(recorder)
    if args.user:
        protect(server, factories, args.user, args.password or "")

    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY {args.port}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
