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
        # FFmpeg's parsing: the userinfo runs to the last '@' before the path
        ("rtsp://user:SECRET@PW@host/x", "PW"),
        ("rtsp://user:SECRET@PW@host/x", "SECRET"),
        ("http://cam/x?auth=AUTHVALUE", "AUTHVALUE"),
        ("http://cam/x?a=1&apikey=KEYVALUE", "KEYVALUE"),
        ("https://cdn/x.m3u8?X-Amz-Signature=SIGVALUE", "SIGVALUE"),
        ("https://cdn/x?access_token=AT1&client_secret=CS1", "AT1"),
        ("https://cdn/x?access_token=AT1&client_secret=CS1", "CS1"),
        ("rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl", "abcd-efgh"),
        ("rtmps://live.example:443/app/STREAMKEY?x=1", "STREAMKEY"),
        ("srt://h:9000?passphrase=LONGPASSPHRASE", "LONGPASSPHRASE"),
        ("srt://h:9000?streamid=publish:cam:user:PASS9", "PASS9"),
        ("error opening 'rtsp://a:quoted@h/x': refused", "quoted"),
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
    for text in (
        "rtsp://10.0.0.5/ch1", "video.mp4", "mail me at a@b.c", "http://h:8080/",
        "http://h/x?mail=a@b.c", "rtmp://host/app", "http://[::1]:8080/",
    ):  # fmt: skip
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


def test_redaction_is_idempotent():
    text = "rtsp://u:p@ss@h/x?token=t&ok=1 rtmp://h/app/key"
    assert redact(redact(text)) == redact(text)
