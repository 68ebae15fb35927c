"""Every queue between the agent's threads: its size and what happens when it is full, side by side.

Like ODAS's configuration, which declares each queue with its length, so overflow behaviour is
reviewed in one place rather than found in six modules. The module that fills a queue makes it
with ``QUEUES[...].make(size)`` and fills it with ``QUEUES[...].offer(q, item)``, which applies the
policy declared here and returns what was lost, for the producer to count or report.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

RESULT_QUEUE_SIZE = 256
WAIT_S = 1.0


class Sink(Protocol):
    """What ``offer`` puts into: a ``queue.Queue``, or what quacks like one (``PartyResults``)."""

    def put_nowait(self, item: Any, /) -> None: ...

    def put(self, item: Any, /, block: bool = ..., timeout: float | None = ...) -> None: ...


class Overflow(Enum):
    DROP_NEWEST = "drop the newest item and count it"
    DROP_UTTERANCE = "drop the whole utterance the item belongs to, with a warning"
    DROP_OLDEST = "drop the oldest item (it would be stale by the time it is used)"
    WAIT = "partials are dropped (a newer one follows); anything else waits up to 1 s, then is logged as lost"


@dataclass(frozen=True)
class QueueSpec:
    producer: str
    consumer: str
    size: str  # where the size comes from
    overflow: Overflow

    def make(self, size: int) -> queue.Queue:
        return queue.Queue(maxsize=size)

    def offer(self, q: Sink, item, *, expendable: bool = False) -> list:
        """Put ``item`` by this queue's overflow policy; returns the items lost (none: ``[]``).

        DROP_OLDEST loses the oldest queued item, the other policies ``item`` itself; WAIT drops an
        ``expendable`` item at once (a newer one follows) and waits up to 1 s for room for any other."""
        try:
            q.put_nowait(item)
            return []
        except queue.Full:
            pass
        if self.overflow is Overflow.DROP_OLDEST:
            assert isinstance(q, queue.Queue)  # only the speaker's queue drops its oldest, and make() made it
            lost: list = []
            while True:
                try:
                    q.put_nowait(item)
                    return lost
                except queue.Full:
                    try:
                        lost.append(q.get_nowait())
                    except queue.Empty:
                        pass
        if self.overflow is Overflow.WAIT and not expendable:
            try:
                q.put(item, timeout=WAIT_S)
                return []
            except queue.Full:
                pass
        return [item]


QUEUES = {
    "capture": QueueSpec("PortAudio callback", "pipeline thread", "capture.queue_frames", Overflow.DROP_NEWEST),
    "uplink": QueueSpec("pipeline thread", "uplink thread", "uplink.inbound_queue_events", Overflow.DROP_UTTERANCE),
    "results": QueueSpec("uplink thread", "results thread", "RESULT_QUEUE_SIZE", Overflow.WAIT),
    "speaker": QueueSpec("results thread", "speaker thread", "outputs.speaker.queue_items", Overflow.DROP_OLDEST),
    "http": QueueSpec("results thread", "HTTP server loop", "outputs.http.queue_items", Overflow.DROP_NEWEST),
    "debug": QueueSpec("pipeline thread", "debug recorder thread", "debug_recorder.QUEUE_ITEMS", Overflow.DROP_NEWEST),
}
