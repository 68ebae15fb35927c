"""The parties' connections, owned by a router: the conversation's face to the daemon.

Built by composition: each connection is a plain ``Uplink`` from ``make_uplink`` (its own socket,
outbox, replay and reconnect), so every guarantee of the one-language box holds on every one.
Routed by direction, each party language has a connection and an utterance is handed to exactly
the one its seat decided; a connection replays only what it was given, so a reconnect cannot send
an utterance to another language. Routed by language, one connection asks the service to identify
each utterance's language among the parties'. Results come back through a small adapter that
stamps them with the party and the language, so the outputs can say who said what in which language.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from collections import OrderedDict
from typing import Callable

from agent.conversation.config import (
    ConversationConfig,
    PartyConfig,
    identifying_uplink_config,
    uplink_config_for,
)
from agent.conversation.router import Seat, SeatMap, UtteranceRouter
from agent.events import FinalResult, LinkStatus, PartialResult, SegmentEvent, UplinkError
from agent.uplink import Uplink, make_uplink
from parley_common.languages import base_language

log = logging.getLogger("parley.conversation")

PARTY_MEMORY = 1000  # utterance -> party entries kept for stamping late results


class _SeatMemory:
    """Utterance -> the party its seat decided: written on the pipeline thread (routing), read on the
    uplinks' threads (stamping results, a turn's expected language), so behind a lock; the oldest go."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seated: OrderedDict[int, str | None] = OrderedDict()

    def remember(self, utterance_id: int, party: str | None) -> None:
        with self._lock:
            self._seated[utterance_id] = party
            while len(self._seated) > PARTY_MEMORY:
                self._seated.popitem(last=False)

    def get(self, utterance_id: int) -> str | None:
        with self._lock:
            return self._seated.get(utterance_id)


class _Links:
    """Every connection's up/down, so the one LinkStatus the outputs see means "all up"."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.uplinks: dict = {}  # label (the party language, or "identified") -> Uplink

    @property
    def all_up(self) -> bool:
        return all(u.connected for u in self.uplinks.values())

    def down(self) -> list[str]:
        return [label for label, uplink in self.uplinks.items() if not uplink.connected]


class PartyResults:
    """What one connection emits, stamped with party and language, onto the shared results queue.

    ``language`` is the connection's (route_by direction); None keeps the language the service
    identified. ``party_of(utterance_id, language)`` names the talker. Quacks like the
    ``queue.Queue`` an ``Uplink`` writes to (``put_nowait``/``put``).
    """

    def __init__(self, results: queue.Queue, language: str | None,
                 party_of: Callable[[int, str | None], str | None], links: _Links | None = None):
        self.results = results
        self.language = language
        self._party_of = party_of
        self._links = links
        self._label = language or "identified"

    def put_nowait(self, event) -> None:
        self.put(event, block=False)

    def put(self, event, block: bool = True, timeout: float | None = None) -> None:
        if isinstance(event, (PartialResult, FinalResult)):
            language = self.language or event.language
            translations = event.translations
            if self.language is None and language:  # identified: the talker's own language is no translation
                translations = {t: text for t, text in translations.items() if base_language(t) != base_language(language)}
            event = dataclasses.replace(event, party=self._party_of(event.utterance_id, language), language=language,
                                        translations=translations)
        elif isinstance(event, UplinkError) and self._links is not None:
            event = dataclasses.replace(event, message=f"{self._label}: {event.message}")
        if isinstance(event, LinkStatus) and self._links is not None:
            with self._links.lock:  # the verdict and its place in the queue stay in step across threads
                all_up, detail = self._links.all_up, f"{self._label}: {event.detail}"
                if event.connected and not all_up:  # one connected, the box is not up yet: say for what it waits
                    detail = f"waiting for {', '.join(self._links.down())} ({self._label} connected)"
                self.results.put(LinkStatus(all_up, detail), block, timeout)
            return
        self.results.put(event, block, timeout)


class ConversationUplink:
    """Same face as ``Uplink`` (start, send, close, idle, connected, ...) over the parties' connections.

    ``route_by: direction``: one uplink per party language, the seat picks it. ``language``/``both``:
    one uplink whose service identifies each utterance's language among the parties'; the seat only
    names the talker among parties sharing a language and, with ``both``, tells the gateway which
    language to expect. ``direction()`` is the front end's current azimuth estimate, read on the
    pipeline thread that calls ``send``.
    """

    def __init__(self, uplink_config, conversation: ConversationConfig, results: queue.Queue,
                 direction: Callable[[], float | None], make=make_uplink):
        self.conversation = conversation
        self._direction = direction
        self._seated = _SeatMemory()
        self._links = _Links()
        self.language_of = {party.name: party.language for party in conversation.parties}
        self.uplinks: dict[str | None, Uplink] = {}  # by language; None: the one identifying connection
        identifying = conversation.identifies_language
        try:
            if identifying:
                expected = self._expected_language if conversation.route_by == "both" else None
                stamp = PartyResults(results, None, self._party_speaking, self._links)
                self.uplinks[None] = make(identifying_uplink_config(uplink_config, conversation), stamp, expected)
            else:
                for party in conversation.parties:
                    if party.language not in self.uplinks:
                        stamp = PartyResults(results, party.language, self._seat_party, self._links)
                        self.uplinks[party.language] = make(uplink_config_for(uplink_config, conversation, party), stamp)
        except BaseException:
            self.close(0.1)
            raise
        self._links.uplinks = {language or "identified": uplink for language, uplink in self.uplinks.items()}
        # seated: both angles set (PartyConfig allows both or neither)
        seats = [Seat(p.name, p.from_deg, p.to_deg) for p in conversation.parties
                 if p.from_deg is not None and p.to_deg is not None]
        # language alone: the route is the one connection, so nothing is held (decided at speech start)
        decide_after_ms = 0 if conversation.route_by == "language" else conversation.decide_after_ms
        self.router = UtteranceRouter(SeatMap(seats, conversation.default_party), decide_after_ms,
                                      on_decision=self._decided, keep_unseated=identifying)

    def _decided(self, decision) -> None:
        self._seated.remember(decision.utterance_id, decision.party)
        if decision.party is None:
            return
        guess = "" if not decision.corrected else f" (first guess {decision.first_guess or 'nobody'})"
        where = "?" if decision.azimuth_deg is None else f"{decision.azimuth_deg:.0f}°"
        log.info("utterance %d from %s: seat of %s, %s%s", decision.utterance_id, where, decision.party,
                 self.language_of[decision.party], guess)

    def _seat_party(self, utterance_id: int, _language: str | None) -> str | None:
        return self._seated.get(utterance_id)

    def _expected_language(self, utterance_id: int) -> str | None:
        party = self._seated.get(utterance_id)
        return self.language_of[party] if party else None

    def _party_speaking(self, utterance_id: int, language: str | None) -> str | None:
        """The party speaking the identified language; among several, the one in whose seat it was said."""
        seated = self._seated.get(utterance_id)
        if language is None:
            return seated
        speakers = [p.name for p in self.conversation.parties_speaking(language)]
        if not speakers:
            return seated
        return seated if seated in speakers else speakers[0]

    def start(self) -> None:
        for uplink in self.uplinks.values():
            uplink.start()

    def send(self, event: SegmentEvent) -> None:
        for delivery in self.router.route(event, self._direction()):
            party = delivery.party  # None only when identifying (the router keeps seatless utterances then)
            language = None if self.conversation.identifies_language or party is None else self.language_of[party]
            self.uplinks[language].send(delivery.event)

    def close(self, timeout_s: float = 2.0) -> None:
        for uplink in self.uplinks.values():
            uplink.close(timeout_s=timeout_s / max(1, len(self.uplinks)))

    def acknowledge(self, utterance_id: int) -> None:
        for uplink in self.uplinks.values():  # only the one that spooled it has a file to remove
            uplink.acknowledge(utterance_id)

    @property
    def spool_problem(self) -> str | None:
        return next((u.spool_problem for u in self.uplinks.values() if u.spool_problem), None)

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
    language, if one is configured), its results stamped with that language, or with the language the
    service identified (``uplink.identify_languages``: a kiosk whose visitors speak either of two)."""
    if conversation.multi_party:
        return ConversationUplink(uplink_config, conversation, results, direction)
    party: PartyConfig | None = conversation.parties[0] if conversation.parties else None
    config = uplink_config_for(uplink_config, conversation, party)
    name = party.name if party else None
    language = None if config.identify_languages else config.from_language  # None: the identified one
    return make_uplink(config, PartyResults(results, language, lambda _id, _language: name))
