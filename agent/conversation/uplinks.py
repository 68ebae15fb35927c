"""One uplink per party language, owned by a router: the conversation's face to the daemon.

Built by composition: each language gets a plain ``Uplink`` from ``make_uplink`` (its own
socket, outbox, replay and reconnect), so every guarantee of the one-language box holds on every
connection. An utterance is handed to exactly one connection, the one of the language its seat
decided; a connection replays only what it was given, so a reconnect cannot send an utterance to
another language. Results come back through a small adapter per connection that stamps them with
the party and the language, so the outputs can say who said what in which language.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from collections import OrderedDict
from typing import Callable

from agent.conversation.config import ConversationConfig, PartyConfig, uplink_config_for
from agent.conversation.router import Seat, SeatMap, UtteranceRouter
from agent.events import FinalResult, LinkStatus, PartialResult, SegmentEvent, UplinkError
from agent.uplink import make_uplink

log = logging.getLogger("parley.conversation")

PARTY_MEMORY = 1000  # utterance -> party entries kept for stamping late results


class _Links:
    """Every connection's up/down, so the one LinkStatus the outputs see means "all up"."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.uplinks: list = []

    @property
    def all_up(self) -> bool:
        return all(u.connected for u in self.uplinks)


class PartyResults:
    """What one connection emits, stamped with party and language, onto the shared results queue.

    Quacks like the ``queue.Queue`` an ``Uplink`` writes to (``put_nowait``/``put``).
    """

    def __init__(self, results: queue.Queue, language: str, party_of: Callable[[int], str | None],
                 links: _Links | None = None):
        self.results = results
        self.language = language
        self._party_of = party_of
        self._links = links

    def put_nowait(self, event) -> None:
        self.put(event, block=False)

    def put(self, event, block: bool = True, timeout: float | None = None) -> None:
        if isinstance(event, (PartialResult, FinalResult)):
            event = dataclasses.replace(event, party=self._party_of(event.utterance_id), language=self.language)
        elif isinstance(event, UplinkError) and self._links is not None:
            event = dataclasses.replace(event, message=f"{self.language}: {event.message}")
        if isinstance(event, LinkStatus) and self._links is not None:
            with self._links.lock:  # the verdict and its place in the queue stay in step across threads
                self.results.put(LinkStatus(self._links.all_up, f"{self.language}: {event.detail}"), block, timeout)
            return
        self.results.put(event, block, timeout)


class ConversationUplink:
    """Same face as ``Uplink`` (start, send, close, idle, connected, ...) over one uplink per language.

    ``direction()`` is the front end's current azimuth estimate, read on the pipeline thread that
    calls ``send``.
    """

    def __init__(self, uplink_config, conversation: ConversationConfig, results: queue.Queue,
                 direction: Callable[[], float | None], make=make_uplink):
        self.conversation = conversation
        self._direction = direction
        self._party_of: OrderedDict[int, str] = OrderedDict()
        self._links = _Links()
        self.language_of = {party.name: party.language for party in conversation.parties}
        self.uplinks = {}
        try:
            for party in conversation.parties:
                if party.language not in self.uplinks:
                    stamp = PartyResults(results, party.language, self._party_of.get, self._links)
                    self.uplinks[party.language] = make(uplink_config_for(uplink_config, conversation, party), stamp)
        except BaseException:
            self.close(0.1)
            raise
        self._links.uplinks = list(self.uplinks.values())
        seats = [Seat(p.name, p.from_deg, p.to_deg) for p in conversation.parties if p.seated]
        self.router = UtteranceRouter(SeatMap(seats, conversation.default_party), conversation.decide_after_ms,
                                      on_decision=self._decided)

    def _decided(self, decision) -> None:
        if decision.party is None:
            return
        self._party_of[decision.utterance_id] = decision.party
        while len(self._party_of) > PARTY_MEMORY:
            self._party_of.popitem(last=False)
        guess = "" if not decision.corrected else f" (first guess {decision.first_guess or 'nobody'})"
        where = "?" if decision.azimuth_deg is None else f"{decision.azimuth_deg:.0f}°"
        log.info("utterance %d from %s: %s, %s%s", decision.utterance_id, where, decision.party,
                 self.language_of[decision.party], guess)

    def start(self) -> None:
        for uplink in self.uplinks.values():
            uplink.start()

    def send(self, event: SegmentEvent) -> None:
        for delivery in self.router.route(event, self._direction()):
            self.uplinks[self.language_of[delivery.party]].send(delivery.event)

    def close(self, timeout_s: float = 2.0) -> None:
        for uplink in self.uplinks.values():
            uplink.close(timeout_s=timeout_s / max(1, len(self.uplinks)))

    @property
    def next_utterance_id(self) -> int:
        """Past every id any language's spool still owes, so ids stay unique across connections."""
        return max(u.next_utterance_id for u in self.uplinks.values())

    @property
    def idle(self) -> bool:
        return all(u.idle for u in self.uplinks.values())

    @property
    def connected(self) -> bool:
        return self._links.all_up

    @property
    def connects(self) -> int:
        """Counted like one uplink's: the first connect, plus every reconnect of any connection."""
        reconnects = sum(max(0, u.connects - 1) for u in self.uplinks.values())
        return reconnects + any(u.connects for u in self.uplinks.values())

    @property
    def pending_utterances(self) -> int:
        return sum(u.pending_utterances for u in self.uplinks.values())

    @property
    def dropped_utterances(self) -> int:
        return sum(u.dropped_utterances for u in self.uplinks.values()) + self.router.dropped

    @property
    def thread_alive(self) -> bool:
        return all(u.thread_alive for u in self.uplinks.values())


def make_party_uplink(uplink_config, conversation: ConversationConfig, results: queue.Queue,
                      direction: Callable[[], float | None]):
    """Two or more parties: a ``ConversationUplink``; otherwise one plain uplink (in the one party's
    language, if one is configured), its results stamped with that language."""
    if conversation.multi_party:
        return ConversationUplink(uplink_config, conversation, results, direction)
    party: PartyConfig | None = conversation.parties[0] if conversation.parties else None
    config = uplink_config_for(uplink_config, conversation, party)
    name = party.name if party else None
    return make_uplink(config, PartyResults(results, config.from_language, lambda _id: name))
