"""Credentials never survive redaction: URLs, query secrets, longer messages and JSON."""

from __future__ import annotations

import json

import pytest

from streamdenoise.redact import redact, redact_obj


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("rtsp://admin:hunter2@192.168.1.10:554/stream1", "hunter2"),
        ("rtsps://user:p%40ss@cam.local/live", "p%40ss"),
        ("rtmp://alice@server/app", "alice"),
        ("http://cam/snapshot.cgi?user=bob&password=s3cret&x=1", "s3cret"),
        ("http://cam/video?pwd=abc123", "abc123"),
        ("srt://host:9000?passphrase=x&token=tok42", "tok42"),
    ],
)
def test_secret_is_removed(text, secret):
    out = redact(text)
    assert secret not in out
    assert "***" in out


def test_inside_a_longer_message_keeps_the_rest():
    msg = "cannot open rtsp://admin:hunter2@10.0.0.5/ch1: Connection refused (after 3 tries)"
    out = redact(msg)
    assert out == "cannot open rtsp://***@10.0.0.5/ch1: Connection refused (after 3 tries)"


def test_several_urls_in_one_line():
    out = redact("a rtsp://u1:p1@h1/x and udp://u2:p2@h2:5000 end")
    assert "p1" not in out and "p2" not in out and out.count("***@") == 2


def test_urls_without_credentials_are_unchanged():
    for text in ("rtsp://10.0.0.5/ch1", "video.mp4", "mail me at a@b.c", "http://h:8080/"):
        assert redact(text) == text


def test_redact_obj_walks_json_like_data():
    data = {
        "source": {"description": "rtsp://u:topsecret@cam/1", "reconnects": 2},
        "sinks": ["rtmp://x:y2k@srv/app", 3, None],
        "nested": ({"url": "http://cam/?password=pw9"},),
    }
    text = json.dumps(redact_obj(data))
    for secret in ("topsecret", "y2k", "pw9"):
        assert secret not in text
    assert redact_obj(data)["source"]["reconnects"] == 2
