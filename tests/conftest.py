"""Fixtures shared by every test module; helpers live in tests/helpers.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import make_clip, register_test_backend


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> Path:
    """A 30-frame 160×96 25 fps H.264 MP4, made once per session; do not modify it."""
    return make_clip(tmp_path_factory.mktemp("media") / "clip.mp4")


@pytest.fixture
def test_backend():
    """Registers the test-only ``test-blur`` backend in this process; returns its name."""
    from streamdenoise.backends import BACKENDS

    register_test_backend()
    yield "test-blur"
    BACKENDS.pop("test-blur", None)
