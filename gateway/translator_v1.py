"""The Translator Speech v1 protocol: WAV header + PCM up; JSON partial/final and binary WAV down.

Extension: several targets (repeated or comma-separated ``to``). ``translation`` then holds the
first target and ``translations`` maps every target to its text.
"""

from __future__ import annotations

import asyncio
import logging

from websockets.exceptions import ConnectionClosed

from gateway.admission import Slot, receive
from gateway.mp3 import wav_to_mp3
from gateway.phrases import PhraseStarted
from gateway.session import Result, TranslationSession
from parley_common.protocols.translator_v1 import Timing, V1Result
from parley_common.protocols.wav import AudioBudget, WavHeaderError, pcm_after_header

log = logging.getLogger("parley.gateway.v1")
CLOSE_BAD_MESSAGE = 1003


async def serve_translator_v1(ws, session: TranslationSession, features: set[str], limits, slot: Slot,
                              mp3: bool = False) -> None:
    """``mp3``: the query's ``format=audio/mp3``; speech is sent as MP3 instead of WAV."""
    timing = "timinginfo" in features
    speech = "texttospeech" in features
    header_seen = False
    budget = AudioBudget(limits.max_audio_s)
    try:
        while True:
            message = await receive(ws, slot, limits.idle_timeout_s)
            if message is None:
                await ws.close(1000, f"no audio for {limits.idle_timeout_s:g} s")
                return
            if isinstance(message, str):
                await ws.close(CLOSE_BAD_MESSAGE, "text messages are not accepted; send WAV audio as binary")
                return
            if not header_seen:
                try:
                    message = pcm_after_header(message)
                except WavHeaderError as exc:
                    await ws.close(CLOSE_BAD_MESSAGE, str(exc)[:120])
                    return
                header_seen = True
            slot.heard_audio()
            if not budget.take(message):
                await ws.close(1000, "maximum audio duration reached")
                return
            for result in await session.feed(message):
                await _send(ws, session, result, timing, speech, mp3)
    except ConnectionClosed:
        log.info("client went away")
    finally:
        await session.close()


async def _send(ws, session: TranslationSession, result, timing: bool, speech: bool, mp3: bool) -> None:
    if isinstance(result, PhraseStarted) or (result.final and not result.text):
        return  # v1 has no "no match": a phrase that was noise gets no final
    await ws.send(_result_message(result, session.request.targets, timing).encode())
    if result.final and speech:
        for _language, audio in await session.speak(result):
            if audio:
                await ws.send(await asyncio.to_thread(wav_to_mp3, audio) if mp3 else audio)


def _result_message(result: Result, targets: tuple[str, ...], timing: bool) -> V1Result:
    return V1Result(
        result.final, str(result.phrase) if result.final else f"{result.phrase}.{result.end_sample // 1600}",
        result.text, {t: result.translations.get(t, "") for t in targets},
        Timing.of_samples(result.start_sample, result.end_sample) if timing else None)
