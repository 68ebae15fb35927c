"""Who said what, across restarts: a session id for each agent run and each utterance's wall-clock start.

Utterance ids and the audio clock (``start_sample``) restart with the process, so on their own two
runs write two "utterance 1 at sample 106720". The session id is the run's UTC start time (sortable)
with a random suffix (distinct even for two runs in one millisecond or a clock stepped back), so it
needs no state kept on disk. The stamp rides on ``SpeechStarted``, which the spool keeps: an
utterance replayed by a later run keeps the session and the time it was spoken in.
"""

from __future__ import annotations

import dataclasses
import secrets
import time

from agent.events import SegmentEvent, SpeechStarted


def new_session_id(now_s: float | None = None) -> str:
    """E.g. ``20261203T122557.123Z-3fa2c1``: sorts by start time, unique per run."""
    now_s = time.time() if now_s is None else now_s
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now_s)) + f".{int(now_s * 1000) % 1000:03d}Z"
    return f"{stamp}-{secrets.token_hex(3)}"


class UtteranceStamper:
    """Stamps each ``SpeechStarted`` with the session and the wall-clock time of its first sample.

    ``now_sample`` is the audio clock at the moment of the call (the end of the frame just
    processed); the utterance began ``now_sample - start_sample`` samples earlier."""

    def __init__(self, session: str, sample_rate_hz: int, clock=time.time):
        self.session = session
        self.sample_rate_hz = sample_rate_hz
        self._clock = clock

    def stamp(self, event: SegmentEvent, now_sample: int) -> SegmentEvent:
        if not isinstance(event, SpeechStarted) or event.session is not None:
            return event
        lag_s = max(0, now_sample - event.start_sample) / self.sample_rate_hz
        return dataclasses.replace(event, session=self.session, started_at_s=round(self._clock() - lag_s, 3))
