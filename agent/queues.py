"""Every queue between the agent's threads: its size and what happens when it is full, side by side.

Like ODAS's configuration, which declares each queue with its length, so overflow behaviour is
reviewed in one place rather than found in four modules. The module that fills a queue makes it
with ``QUEUES[...].make(size)`` and applies the policy named here.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass
from enum import Enum

RESULT_QUEUE_SIZE = 256


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


QUEUES = {
    "capture": QueueSpec("PortAudio callback", "pipeline thread", "capture.queue_frames", Overflow.DROP_NEWEST),
    "uplink": QueueSpec("pipeline thread", "uplink thread", "uplink.inbound_queue_events", Overflow.DROP_UTTERANCE),
    "results": QueueSpec("uplink thread", "results thread", "RESULT_QUEUE_SIZE", Overflow.WAIT),
    "speaker": QueueSpec("results thread", "speaker thread", "outputs.speaker.queue_items", Overflow.DROP_OLDEST),
}
