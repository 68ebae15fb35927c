"""The QUEUES table's overflow policies are what ``offer`` does, and every queue between threads is in it."""

from __future__ import annotations

import queue
import re
import time
from pathlib import Path

import pytest

from agent.queues import QUEUES, WAIT_S, Overflow, QueueSpec


def full(spec: QueueSpec, *items) -> queue.Queue:
    q = spec.make(len(items))
    for item in items:
        assert spec.offer(q, item) == []
    return q


def drain(q: queue.Queue) -> list:
    return [q.get_nowait() for _ in range(q.qsize())]


@pytest.mark.parametrize("name", [n for n, s in QUEUES.items() if s.overflow in (Overflow.DROP_NEWEST,
                                                                                    Overflow.DROP_UTTERANCE)])
def test_drop_newest_and_drop_utterance_lose_the_item_offered(name):
    q = full(QUEUES[name], 1, 2)
    assert QUEUES[name].offer(q, 3) == [3] and drain(q) == [1, 2]


def test_drop_oldest_makes_room_by_losing_the_oldest():
    q = full(QUEUES["speaker"], 1, 2)
    assert QUEUES["speaker"].offer(q, 3) == [1] and drain(q) == [2, 3]


def test_wait_drops_an_expendable_item_at_once_and_waits_a_second_for_any_other():
    q = full(QUEUES["results"], "final 1")
    started = time.monotonic()
    assert QUEUES["results"].offer(q, "partial", expendable=True) == ["partial"]
    assert time.monotonic() - started < 0.5 * WAIT_S
    assert QUEUES["results"].offer(q, "final 2") == ["final 2"]
    assert time.monotonic() - started >= WAIT_S


def test_every_queue_between_the_agents_threads_is_made_from_the_table():
    agent = Path(__file__).resolve().parents[2] / "agent"
    bypassing = [str(path.relative_to(agent)) for path in agent.rglob("*.py")
                 if re.search(r"\bqueue\.Queue\(", path.read_text()) and path.name != "queues.py"]
    assert bypassing == []
