"""FrameQueue policies: drops counted, order kept, blocking with timeout, EOS never dropped."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from streamdenoise.frame import EndOfStream, Frame
from streamdenoise.frame_queue import FrameQueue, QueueClosed

IMAGE = np.zeros((2, 2, 3), np.uint8)


def frame(seq: int) -> Frame:
    return Frame(IMAGE, seq=seq)


def drain(queue: FrameQueue) -> list:
    items = []
    while (item := queue.get(timeout=0)) is not None:
        items.append(item)
    return items


def test_latest_drops_oldest_and_counts():
    queue = FrameQueue(3, "latest")
    for i in range(10):
        assert queue.put(frame(i))
    assert queue.drops == 7
    assert [f.seq for f in drain(queue)] == [7, 8, 9]


def test_lossless_keeps_order_and_never_drops():
    queue = FrameQueue(2, "lossless")
    got = []

    def consume():
        while True:
            item = queue.get(timeout=5)
            if isinstance(item, EndOfStream):
                return
            got.append(item.seq)
            time.sleep(0.001)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for i in range(50):
        assert queue.put(frame(i), timeout=5)
    queue.put(EndOfStream())
    consumer.join(timeout=10)
    assert got == list(range(50))
    assert queue.drops == 0


def test_lossless_put_blocks_then_times_out():
    queue = FrameQueue(1, "lossless")
    assert queue.put(frame(0))
    start = time.monotonic()
    assert queue.put(frame(1), timeout=0.2) is False
    assert 0.15 <= time.monotonic() - start < 2
    assert len(queue) == 1


def test_lossless_put_resumes_when_consumer_takes():
    queue = FrameQueue(1, "lossless")
    queue.put(frame(0))
    threading.Timer(0.1, queue.get).start()
    assert queue.put(frame(1), timeout=5)
    assert [f.seq for f in drain(queue)] == [1]


def test_get_times_out_with_none():
    queue = FrameQueue(2, "latest")
    start = time.monotonic()
    assert queue.get(timeout=0.1) is None
    assert time.monotonic() - start >= 0.09


@pytest.mark.parametrize("policy", ["latest", "lossless"])
def test_end_of_stream_is_never_dropped(policy):
    queue = FrameQueue(1, policy)
    queue.put(frame(0))
    eos = EndOfStream(RuntimeError("source died"))
    assert queue.put(eos, timeout=0)  # accepted even though the queue is full
    if policy == "latest":
        for i in range(1, 5):
            queue.put(frame(i))
    items = drain(queue)
    assert eos in items
    assert isinstance(items[-1], Frame) or items[-1] is eos
    assert queue.drops == (4 if policy == "latest" else 0)


def test_close_wakes_blocked_consumer_and_producer():
    empty = FrameQueue(1, "lossless")
    full = FrameQueue(1, "lossless")
    full.put(frame(0))
    errors = []

    def wait(action):
        try:
            action()
        except QueueClosed:
            errors.append(action)

    threads = [
        threading.Thread(target=wait, args=(lambda: empty.get(timeout=10),)),
        threading.Thread(target=wait, args=(lambda: full.put(frame(1), timeout=10),)),
    ]
    for t in threads:
        t.start()
    time.sleep(0.1)
    empty.close()
    full.close()
    for t in threads:
        t.join(timeout=2)
        assert not t.is_alive()
    assert len(errors) == 2
    with pytest.raises(QueueClosed):
        empty.put(frame(2))


def test_invalid_arguments():
    with pytest.raises(ValueError):
        FrameQueue(0, "latest")
    with pytest.raises(ValueError):
        FrameQueue(1, "newest")


def test_wake_ends_a_wait_once_and_items_still_come_first():
    queue = FrameQueue(2, "latest")
    threading.Timer(0.1, queue.wake).start()
    started = time.monotonic()
    assert queue.get(timeout=5) is None
    assert time.monotonic() - started < 2
    queue.wake()  # before the wait: the next get returns at once, the one after waits again
    assert queue.get(timeout=5) is None
    assert queue.get(timeout=0.05) is None
    queue.put(Frame(np.zeros((2, 2, 3), np.uint8), seq=0))
    queue.wake()
    assert isinstance(queue.get(timeout=5), Frame)  # an item is never hidden by a wake
