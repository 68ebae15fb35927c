"""Turn-taking scenes through the real front end and the router: which party each utterance went to."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.audio.synth import speak
from agent.conversation.config import ConversationConfig, PartyConfig, frontend_for
from agent.conversation.router import Seat, SeatMap, UtteranceRouter
from agent.events import SpeechChunk, SpeechEnded, SpeechStarted
from agent.frontend import FrontEnd, FrontendConfig
from agent.simulation import RATE_HZ, simulate_scene
from parley_common.frames import Frame

FRAME = 320
TURNS = (("en-us", "Good morning. Where is the train station?"), ("es", "Buenos días. La estación está muy cerca."),
         ("en-us", "Thank you very much."), ("es", "De nada. Buen viaje."))


def seated_pair(first_deg: float, second_deg: float) -> ConversationConfig:
    """Two parties whose seats split the circle half-way between the talkers."""
    middle = (first_deg + ((second_deg - first_deg) % 360) / 2) % 360
    opposite = (middle + 180) % 360
    first_from, first_to = (opposite, middle) if (first_deg - opposite) % 360 < (middle - opposite) % 360 else (middle, opposite)
    second_from, second_to = first_to, first_from
    return ConversationConfig(parties=(PartyConfig("A", "en-US", from_deg=first_from, to_deg=first_to),
                                       PartyConfig("B", "es-ES", from_deg=second_from, to_deg=second_to)))


@dataclass
class Routed:
    truth: list[str]  # the party who said each scripted turn
    decisions: list  # RouteDecision per detected utterance, in order
    started_deg: list[float | None]
    ended_deg: list[float | None]
    audio: list[bytes]  # each detected utterance's wire PCM (beamformed, pre-roll included), in order


def route_conversation(geometry, first_deg: float, second_deg: float, rt60_s: float, snr_db: float,
                       seed: int = 0, noise_dir=None, turns=TURNS, speech=None, fresh_direction: bool = True) -> Routed:
    """Simulate the turns (party A at ``first_deg`` speaks the even ones), run the front end and the router.

    ``fresh_direction=False`` keeps the one-talker front end, whose DOA carries over between talkers."""
    speech = speech or speech_for(turns)
    azimuths = [first_deg if i % 2 == 0 else second_deg for i in range(len(speech))]
    scene = simulate_scene(geometry, speech, talker_azimuth_deg=first_deg, rt60_s=rt60_s, noise="diffuse",
                           snr_db=snr_db, seed=seed, noise_dir=noise_dir, gap_s=1.5, utterance_azimuths_deg=azimuths)
    conversation = seated_pair(first_deg, second_deg)
    frontend_config = frontend_for(FrontendConfig(), conversation) if fresh_direction else FrontendConfig()
    frontend = FrontEnd(frontend_config, geometry, RATE_HZ)
    decisions = []
    seats = SeatMap([Seat(p.name, p.from_deg, p.to_deg) for p in conversation.parties])
    router = UtteranceRouter(seats, conversation.decide_after_ms, on_decision=decisions.append)
    started, ended = [], []
    audio: dict[int, bytearray] = {}

    def route(event) -> None:
        router.route(event, frontend.azimuth_deg)
        if isinstance(event, SpeechStarted):
            started.append(event.azimuth_deg)
            audio[event.utterance_id] = bytearray()
        elif isinstance(event, SpeechChunk):
            audio[event.utterance_id] += event.frame.samples[:, 0].astype("<i2").tobytes()
        elif isinstance(event, SpeechEnded):
            ended.append(event.azimuth_deg)

    for i in range(0, len(scene.mixture) - FRAME + 1, FRAME):
        for event in frontend.process(Frame(scene.mixture[i:i + FRAME], i, RATE_HZ)):
            route(event)
    for event in frontend.flush():
        route(event)
    return Routed(["A" if i % 2 == 0 else "B" for i in range(len(speech))], decisions, started, ended,
                  [bytes(pcm) for pcm in audio.values()])


def speech_for(turns=TURNS) -> list[np.ndarray]:
    return [speak(text, voice=voice) for voice, text in turns]
