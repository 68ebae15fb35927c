"""The Translator Speech v1 protocol: WAV header + PCM up; JSON partial/final and binary WAV down.

Extension: several targets (repeated or comma-separated ``to``). ``translation`` then holds the
first target and ``translations`` maps every target to its text.
"""

from __future__ import annotations

import asyncio
import json
import logging

from websockets.exceptions import ConnectionClosed

from parley_common.protocols.wav import WavHeaderError, parse_header
from gateway.phrases import PhraseStarted
from gateway.session import Result, TranslationSession

log = logging.getLogger("parley.gateway.v1")
TICKS_PER_SAMPLE = 10_000_000 // 16000
CLOSE_BAD_MESSAGE = 1003


async def serve_translator_v1(ws, session: TranslationSession, features: set[str], limits) -> None:
    timing = "timinginfo" in features
    speech = "texttospeech" in features
    header_seen = False
    audio_bytes = 0
    try:
        while True:
            try:
                message = await asyncio.wait_for(ws.recv(), timeout=limits.idle_timeout_s)
            except asyncio.TimeoutError:
                await ws.close(1000, "no audio received for too long")
                return
            if isinstance(message, str):
                await ws.close(CLOSE_BAD_MESSAGE, "text messages are not accepted; send WAV audio as binary")
                return
            if not header_seen:
                try:
                    fmt, offset = parse_header(message)
                except WavHeaderError as exc:
                    await ws.close(CLOSE_BAD_MESSAGE, f"bad audio header: {exc}"[:120])
                    return
                if (fmt.sample_rate_hz, fmt.channels, fmt.bits_per_sample) != (16000, 1, 16):
                    await ws.close(CLOSE_BAD_MESSAGE, "audio must be 16 kHz mono 16-bit PCM")
                    return
                header_seen = True
                message = message[offset:]
            audio_bytes += len(message)
            if audio_bytes > limits.max_audio_s * 32000:
                await ws.close(1000, "maximum audio duration reached")
                return
            for result in await session.feed(message):
                await _send(ws, session, result, timing, speech)
    except ConnectionClosed:
        log.info("client went away")
    finally:
        session.close()


async def _send(ws, session: TranslationSession, result, timing: bool, speech: bool) -> None:
    if isinstance(result, PhraseStarted) or (result.final and not result.text):
        return  # v1 has no "no match": a phrase that was noise gets no final
    message = _result_json(result, session.request.targets, timing)
    await ws.send(json.dumps(message, ensure_ascii=False))
    if result.final and speech:
        audio = await session.speak(result)
        if audio:
            await ws.send(audio)


def _result_json(result: Result, targets: tuple[str, ...], timing: bool) -> dict:
    message = {
        "type": "final" if result.final else "partial",
        "id": str(result.phrase) if result.final else f"{result.phrase}.{result.end_sample // 1600}",
        "recognition": result.text,
        "translation": result.translations.get(targets[0], ""),
    }
    if len(targets) > 1:
        message["translations"] = {t: result.translations.get(t, "") for t in targets}
    if timing:
        message.update(
            audioTimeOffset=result.start_sample * TICKS_PER_SAMPLE,
            audioTimeSize=(result.end_sample - result.start_sample) * TICKS_PER_SAMPLE,
            audioStreamPosition=44 + 2 * result.start_sample,
            audioSizeBytes=2 * (result.end_sample - result.start_sample),
        )
    return message
