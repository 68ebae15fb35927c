"""The Azure Speech USP translation protocol, both flavours.

``v1`` (``/speech/translation/cognitiveservices/v1``): languages in the query; results as
``translation.hypothesis`` / ``translation.phrase`` and TTS as ``translation.synthesis`` +
``translation.synthesis.end``. ``v2`` (``/stt/speech/universal/v2``): languages in
``speech.context``; results as ``translation.response`` and TTS as ``audio.start`` / ``audio`` /
``audio.end`` with an ``X-StreamId``. Each turn (one ``X-RequestId``) gets its own phrase detector,
so offsets are ticks from the turn's first sample, as the SDK expects.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from websockets.exceptions import ConnectionClosed

from gateway.engines.registry import LanguageError, LanguageRequest
from gateway.phrases import PhraseStarted
from gateway.session import Result, TranslationSession
from parley_common.protocols.usp import (
    AUDIO,
    REQUEST_ID,
    SPEECH_CONFIG,
    SPEECH_CONTEXT,
    SPEECH_END_DETECTED,
    SPEECH_START_DETECTED,
    TELEMETRY,
    TURN_END,
    TURN_START,
    FramingError,
    UspMessage,
    build_text,
    parse_binary,
    parse_text,
)
from parley_common.protocols.usp_messages import (
    Audio,
    Hypothesis,
    Phrase,
    SpeechContext,
    SynthesisAudio,
    SynthesisEnd,
    SynthesisStart,
)
from parley_common.protocols.wav import TICKS_PER_SAMPLE, AudioBudget, WavHeaderError, pcm_after_header

log = logging.getLogger("parley.gateway.usp")
CLOSE_PROTOCOL = 1002
CLOSE_INVALID = 1007


class ProtocolViolation(Exception):
    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _Turn:
    def __init__(self, request_id: str, session: TranslationSession, interactive: bool):
        self.request_id = request_id
        self.session = session
        self.interactive = interactive
        self.header_seen = False
        self.done = False


class UspConnection:
    def __init__(self, ws, flavour: str, make_session, resolve_languages, query_request: LanguageRequest | None,
                 limits):
        self.ws = ws
        self.flavour = flavour
        self._make_session = make_session  # (LanguageRequest) -> TranslationSession
        self._resolve = resolve_languages  # (source, targets, voice, speech_wanted) -> LanguageRequest
        self._query_request = query_request
        self._limits = limits
        self._contexts: dict[str, SpeechContext] = {}
        self._finished_ids: set[str] = set()
        self._turn: _Turn | None = None
        self._stream_id = 0
        self._budget = AudioBudget(limits.max_audio_s)

    async def serve(self) -> None:
        try:
            while True:
                try:
                    raw = await asyncio.wait_for(self.ws.recv(), timeout=self._limits.idle_timeout_s)
                except asyncio.TimeoutError:
                    await self.ws.close(1000, "idle timeout")
                    return
                try:
                    message = parse_text(raw) if isinstance(raw, str) else parse_binary(raw)
                    await self._handle(message)
                except FramingError as exc:
                    raise ProtocolViolation(CLOSE_INVALID, f"malformed message: {exc}") from None
        except ProtocolViolation as violation:
            log.info("closing with %d: %s", violation.code, violation.reason)
            await self.ws.close(violation.code, violation.reason[:120])
        except ConnectionClosed:
            log.info("client went away")
        finally:
            if self._turn is not None:
                await self._turn.session.close()

    async def _handle(self, message: UspMessage) -> None:
        if not message.path:
            raise ProtocolViolation(CLOSE_PROTOCOL, "message without a Path header")
        path = message.path.lower()
        if path in (SPEECH_CONFIG, TELEMETRY):
            return
        request_id = message.request_id
        if not request_id or not REQUEST_ID.match(request_id):
            raise ProtocolViolation(CLOSE_PROTOCOL, f"{path} needs an X-RequestId of 32 hex digits")
        if path == SPEECH_CONTEXT:
            try:
                self._contexts[request_id] = SpeechContext.decode(message.json())
            except (ValueError, AttributeError):
                raise ProtocolViolation(CLOSE_INVALID, "speech.context body is not a JSON object") from None
        elif path == AUDIO:
            await self._audio(request_id, Audio.decode(message).payload)

    async def _audio(self, request_id: str, payload: bytes) -> None:
        turn = self._turn
        if turn is None or turn.request_id != request_id:
            if request_id in self._finished_ids:
                return  # late audio of a turn already ended (interactive mode ends after one phrase)
            turn = await self._start_turn(request_id)
        if turn.done:
            return
        if not payload:
            await self._send_results(turn, await turn.session.flush())
            await self._end_turn(turn)
            return
        if not turn.header_seen:
            try:
                payload = pcm_after_header(payload)
            except WavHeaderError as exc:
                raise ProtocolViolation(CLOSE_INVALID, str(exc)) from None
            turn.header_seen = True
        if not self._budget.take(payload):
            await self.ws.close(1000, "maximum audio duration reached")
            return
        if payload:
            await self._send_results(turn, await turn.session.feed(payload))

    async def _start_turn(self, request_id: str) -> _Turn:
        if self._turn is not None:
            await self._turn.session.close()
        context = self._contexts.pop(request_id, SpeechContext())
        try:
            request = self._query_request or self._request_from_context(context)
            session = self._make_session(request)
        except LanguageError as exc:
            raise ProtocolViolation(CLOSE_INVALID, str(exc)) from None
        self._turn = _Turn(request_id, session, interactive=(context.mode or "").upper() == "INTERACTIVE")
        await self.ws.send(build_text(TURN_START, request_id, {"context": {"serviceTag": uuid.uuid4().hex}}))
        return self._turn

    def _request_from_context(self, context: SpeechContext) -> LanguageRequest:
        """v2 clients (and SDK <= 1.42 on v1) put the languages in speech.context, not the query."""
        return self._resolve(context.source or "en-US", list(context.targets), context.voice, bool(context.voice))

    async def _send_results(self, turn: _Turn, results) -> None:
        for result in results:
            if turn.done:
                return
            if isinstance(result, PhraseStarted):
                await self._send(turn, SPEECH_START_DETECTED, {"Offset": result.start_sample * TICKS_PER_SAMPLE})
            elif not result.final:
                await self.ws.send(self._hypothesis(result, turn.session.request).encode(turn.request_id, self.flavour))
            else:
                await self.ws.send(self._phrase(result, turn.session.request).encode(turn.request_id, self.flavour))
                await self._synthesis(turn, result)
                if turn.interactive:
                    await self._end_turn(turn)

    async def _end_turn(self, turn: _Turn) -> None:
        turn.done = True
        self._finished_ids.add(turn.request_id)
        await self._send(turn, SPEECH_END_DETECTED, {"Offset": 0})
        await self.ws.send(build_text(TURN_END, turn.request_id, None))
        await turn.session.close()

    async def _send(self, turn: _Turn, path: str, body: dict) -> None:
        await self.ws.send(build_text(path, turn.request_id, body))

    def _hypothesis(self, result: Result, request: LanguageRequest) -> Hypothesis:
        return Hypothesis(result.text, _translations(result, request), *_ticks(result))

    def _phrase(self, result: Result, request: LanguageRequest) -> Phrase:
        return Phrase(result.text, _translations(result, request), *_ticks(result), result.translation_error)

    async def _synthesis(self, turn: _Turn, result: Result) -> None:
        language = turn.session.request.speak
        if not language or not result.text:
            return
        audio = await turn.session.speak(result)
        stream = None
        if self.flavour == "v2":
            self._stream_id += 1
            stream = str(self._stream_id)
            await self.ws.send(SynthesisStart(language, stream).encode(turn.request_id))
        if audio:
            await self.ws.send(SynthesisAudio(audio, stream).encode(turn.request_id))
        await self.ws.send(SynthesisEnd(None if audio else "synthesis failed", stream).encode(turn.request_id))


def _translations(result: Result, request: LanguageRequest) -> dict[str, str]:
    return {t: result.translations.get(t, "") for t in request.targets}


def _ticks(result: Result) -> tuple[int, int]:
    return result.start_sample * TICKS_PER_SAMPLE, (result.end_sample - result.start_sample) * TICKS_PER_SAMPLE
