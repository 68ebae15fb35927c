"""The Azure Speech USP protocol: translation (both flavours) and plain speech-to-text.

``v1`` (``/speech/translation/cognitiveservices/v1``): languages in the query; results as
``translation.hypothesis`` / ``translation.phrase`` and TTS as ``translation.synthesis`` +
``translation.synthesis.end``. ``v2`` (``/stt/speech/universal/v2``): languages in
``speech.context``; results as ``translation.response`` and TTS as ``audio.start`` / ``audio`` /
``audio.end`` with an ``X-StreamId``. Without target languages (the recognition paths, or v2 with
none in the context) results are ``speech.hypothesis`` / ``speech.phrase``, simple or detailed.

Each turn (one ``X-RequestId``) gets its own phrase detector, so offsets are ticks from the turn's
first sample, as the SDK expects. A turn is continuous only when the client says so in the turn's
context (``phraseDetection.mode`` CONVERSATION or DICTATION), whatever the URL's path names; otherwise
it ends after its first phrase, as single-shot must. The Python SDK cannot say so on the v1 paths
unless a timeout is set (its context is otherwise the same for ``recognize_once`` and continuous), and
there its continuous mode opens a new turn by itself and re-sends the audio after the last phrase, so
ending each turn there costs nothing but a turn. A single-shot turn with no speech ends with
``InitialSilenceTimeout`` (see :mod:`gateway.turn_options` for the timeouts).
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from websockets.exceptions import ConnectionClosed

from gateway import profanity
from gateway.admission import Slot, receive
from gateway.audio_formats import AudioDecoder, AudioFormatError
from gateway.detailed_output import nbest_entry
from gateway.engines.language_id import LanguageChoice
from gateway.json_limits import JsonLimitError, check_json_limits
from gateway.engines.registry import LanguageError, LanguageRequest
from gateway.phrases import PhraseStarted
from gateway.session import Result, TranslationSession
from gateway.turn_options import TurnOptionError, TurnOptions
from parley_common.protocols.usp import (
    REQUEST_ID,
    SPEECH_CONFIG,
    SPEECH_CONTEXT,
    TELEMETRY,
    FramingError,
    UspMessage,
    parse_binary,
    parse_text,
)
from parley_common.protocols.usp_messages import (
    CLIENT_MESSAGES,
    Audio,
    DetectedLanguage,
    Hypothesis,
    Phrase,
    SpeechContext,
    SpeechEndDetected,
    SpeechHypothesis,
    SpeechPhrase,
    SpeechStartDetected,
    SynthesisAudio,
    SynthesisEnd,
    SynthesisStart,
    TurnEnd,
    TurnStart,
    decode_message,
)
from parley_common.protocols.usp_schema import MessageError
from parley_common.protocols.wav import (
    TICKS_PER_SAMPLE,
    WIRE_BYTES_PER_S,
    WIRE_BYTES_PER_SAMPLE,
    WIRE_SAMPLE_RATE_HZ,
    AudioBudget,
)

log = logging.getLogger("parley.gateway.usp")
CLOSE_PROTOCOL = 1002
CLOSE_INVALID = 1007
CONTINUOUS_MODES = ("CONVERSATION", "DICTATION")
MAX_PENDING_CONTEXTS = 8  # contexts sent ahead of their turn's audio; older ones are dropped
MAX_REMEMBERED_TURNS = 1024  # finished turn ids kept to refuse their reuse


class ProtocolViolation(Exception):
    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class UspEndpoint:
    """What the URL fixed: result style, the mode a recognition path names, query options."""

    flavour: str  # "v1" | "v2": translation message style
    output_format: str = "simple"  # the query's format=simple|detailed
    profanity_mode: str = profanity.MASKED  # the query's profanity=, unless a turn's context says otherwise
    options: TurnOptions = TurnOptions()  # the query's timeouts and word timings, unless a context says otherwise
    query_targets: tuple[str, ...] = ()  # to= without from= (the SDKs' auto-detect): the targets
    default_source: str | None = "en-US"  # when neither query nor context names one; None: refuse


class _Turn:
    def __init__(self, request_id: str, session: TranslationSession, single_shot: bool, detailed: bool,
                 initial_silence_samples: int | None):
        self.request_id = request_id
        self.session = session
        self.single_shot = single_shot
        self.detailed = detailed
        self.initial_silence_samples = initial_silence_samples
        self.speech_started = False
        self.audio: AudioDecoder | None = None  # from the turn's WAV header
        self.finals = 0
        self.done = False
        self.pcm_samples = 0  # audio received in this turn: where its speech can have ended at most

    @property
    def speech_only(self) -> bool:
        return not self.session.request.targets


class UspConnection:
    def __init__(self, ws, endpoint: UspEndpoint, make_session, resolve_languages, resolve_identified,
                 query_request: LanguageRequest | None, limits, slot: Slot):
        self.ws = ws
        self.endpoint = endpoint
        self._make_session = make_session  # (LanguageRequest, profanity mode, PhraseTuning) -> TranslationSession
        self._resolve = resolve_languages  # (source, targets, voice, speech_wanted) -> LanguageRequest
        self._resolve_identified = resolve_identified  # (candidates, targets, voices, expected, passthrough) -> ...
        self._query_request = query_request
        self._limits = limits
        self._slot = slot
        self._contexts: OrderedDict[str, SpeechContext] = OrderedDict()
        self._finished_ids: OrderedDict[str, None] = OrderedDict()
        self._turn: _Turn | None = None
        self._stream_id = 0
        self._budget = AudioBudget(limits.max_audio_s)
        self._identified: LanguageChoice | None = None  # at-start identification: the connection's language

    async def serve(self) -> None:
        try:
            while True:
                raw = await receive(self.ws, self._slot, self._limits.idle_timeout_s)
                if raw is None:
                    await self.ws.close(1000, f"no audio for {self._limits.idle_timeout_s:g} s")
                    return
                try:
                    message = parse_text(raw) if isinstance(raw, str) else parse_binary(raw)
                    await self._handle(message)
                except FramingError as exc:
                    raise ProtocolViolation(CLOSE_INVALID, f"malformed message: {exc}") from None
                except MessageError as exc:
                    raise ProtocolViolation(CLOSE_INVALID, str(exc)) from None
        except ProtocolViolation as violation:
            log.info("closing with %d: %s", violation.code, violation.reason)
            await self.ws.close(violation.code, _close_reason(violation.reason))
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
            _check_limits(message)
            decode_message(message, CLIENT_MESSAGES)  # informational (a JSON object), and not activity
            return
        request_id = message.request_id
        if not request_id or not REQUEST_ID.match(request_id):
            raise ProtocolViolation(CLOSE_PROTOCOL, f"{path} needs an X-RequestId of 32 hex digits")
        if path == SPEECH_CONTEXT:
            _check_limits(message)
        decoded = decode_message(message, CLIENT_MESSAGES)
        if isinstance(decoded, SpeechContext):
            if request_id in self._finished_ids or (self._turn and self._turn.request_id == request_id):
                raise ProtocolViolation(CLOSE_PROTOCOL, f"X-RequestId {request_id} was already used by a turn")
            self._contexts[request_id] = decoded
            while len(self._contexts) > MAX_PENDING_CONTEXTS:
                self._contexts.popitem(last=False)
        elif isinstance(decoded, Audio):
            await self._audio(request_id, decoded.payload)
        # other client paths (speech.event, event, agent, audio.commit) carry nothing a turn needs

    async def _audio(self, request_id: str, payload: bytes) -> None:
        turn = self._turn
        if turn is None or turn.request_id != request_id:
            if request_id in self._finished_ids:
                raise ProtocolViolation(CLOSE_PROTOCOL, f"X-RequestId {request_id} belongs to a finished turn")
            if turn is not None and not turn.done:
                await self._end_turn(turn)  # a new turn replaces the open one, which still gets its turn.end
            turn = await self._start_turn(request_id)
        if turn.done:
            return  # audio the client sent before it saw our turn.end (single-shot)
        if not payload:
            if turn.audio is not None:
                await self._send_results(turn, await turn.session.feed(turn.audio.flush()))
            await self._send_results(turn, await turn.session.flush())
            if not turn.done:
                if turn.single_shot and not turn.finals:
                    await self._send_final(turn, Result(True, 0, "", end_sample=0))  # NoMatch, as the service
                if not turn.done:  # continuous: the end of speech is the end of the client's audio
                    await self.ws.send(SpeechEndDetected(turn.pcm_samples * TICKS_PER_SAMPLE).encode(turn.request_id))
                    await self._end_turn(turn)
            return
        if turn.audio is None:
            try:
                turn.audio, payload = AudioDecoder.from_stream_start(payload)
            except AudioFormatError as exc:
                raise ProtocolViolation(CLOSE_INVALID, str(exc)) from None
        payload = turn.audio.decode(payload)
        self._slot.heard_audio(len(payload) / WIRE_BYTES_PER_S)  # seconds of audio, whatever its format
        if not self._budget.take(payload):
            await self.ws.close(1000, "maximum audio duration reached")
            return
        if payload:
            turn.pcm_samples += len(payload) // WIRE_BYTES_PER_SAMPLE
            await self._send_results(turn, await turn.session.feed(payload))
            limit = turn.initial_silence_samples
            if not turn.done and not turn.speech_started and limit is not None and turn.pcm_samples >= limit:
                await self._send_final(turn, Result(True, 0, "", start_sample=limit, end_sample=limit),
                                       status="InitialSilenceTimeout")

    async def _start_turn(self, request_id: str) -> _Turn:
        context = self._contexts.pop(request_id, SpeechContext())
        single_shot = context.mode not in CONTINUOUS_MODES
        try:
            options = self.endpoint.options.with_context(context)
            request = self._request(context)
            mode = profanity.usp_mode(context.profanity) if context.profanity else self.endpoint.profanity_mode
            locked = self._identified if options.identify_once else None
            session = self._make_session(request, mode, options.tuning(single_shot, locked))
        except (LanguageError, profanity.ProfanityError, TurnOptionError) as exc:
            raise ProtocolViolation(CLOSE_INVALID, str(exc)) from None
        detailed = (context.output_format or self.endpoint.output_format) == "detailed" or options.word_timings
        self._turn = _Turn(request_id, session, single_shot, detailed,
                           options.initial_silence_samples(single_shot, WIRE_SAMPLE_RATE_HZ))
        await self.ws.send(TurnStart(uuid.uuid4().hex).encode(request_id))
        return self._turn

    def _request(self, context: SpeechContext) -> LanguageRequest:
        """The query's languages (v1 paths) or the context's (v2), where no targets is speech-to-text;
        candidates in the context (``languageId``) ask for each phrase's language to be identified, on
        every path (the SDK's auto-detect also names them in the query, ``lidEnabled``)."""
        query = self._query_request
        targets = list(context.targets) or list(query.targets if query else self.endpoint.query_targets)
        if context.candidates:
            return self._resolve_identified(list(context.candidates), targets, context.voice_map,
                                            context.expected_language, context.speak_passthrough)
        if query is not None:
            return query
        source = context.source or self.endpoint.default_source
        if source is None:
            raise LanguageError("the query parameter 'from' is required (or languageId candidates in speech.context)")
        return self._resolve(source, targets, context.voice, bool(context.voice))

    async def _send_results(self, turn: _Turn, results) -> None:
        for result in results:
            if turn.done:
                return
            if isinstance(result, PhraseStarted):
                turn.speech_started = True
                await self.ws.send(SpeechStartDetected(result.start_sample * TICKS_PER_SAMPLE).encode(turn.request_id))
            elif not result.final:
                await self.ws.send(self._hypothesis(turn, result))
            else:
                if turn.single_shot:  # its one phrase ends the speech; in continuous mode the SDK would
                    # take a per-phrase end for the end of the turn and open a new one mid-sentence
                    await self.ws.send(SpeechEndDetected(result.end_sample * TICKS_PER_SAMPLE).encode(turn.request_id))
                await self._send_final(turn, result)

    async def _send_final(self, turn: _Turn, result: Result, status: str = "Success") -> None:
        turn.finals += 1
        if result.language and self._identified is None:
            self._identified = result.language
        await self.ws.send(self._phrase(turn, result, status))
        await self._synthesis(turn, result)
        if turn.single_shot:
            await self._end_turn(turn)

    async def _end_turn(self, turn: _Turn) -> None:
        turn.done = True
        self._finished_ids[turn.request_id] = None
        while len(self._finished_ids) > MAX_REMEMBERED_TURNS:
            self._finished_ids.popitem(last=False)
        await self.ws.send(TurnEnd().encode(turn.request_id))
        await turn.session.close()

    def _hypothesis(self, turn: _Turn, result: Result) -> str:
        if turn.speech_only:
            return SpeechHypothesis(result.text, *_ticks(result), _detected(result)).encode(turn.request_id)
        return Hypothesis(result.text, _translations(result, turn.session.request), *_ticks(result),
                          _detected(result), self.endpoint.flavour).encode(turn.request_id)

    def _phrase(self, turn: _Turn, result: Result, status: str) -> str:
        if turn.speech_only:
            return SpeechPhrase(result.text, *_ticks(result), detailed=turn.detailed, status=status,
                                language=_detected(result), best=_best(result, turn)).encode(turn.request_id)
        return Phrase(result.text, _translations(result, turn.session.request), *_ticks(result),
                      result.translation_error, status, _detected(result), _best(result, turn),
                      self.endpoint.flavour).encode(turn.request_id)

    async def _synthesis(self, turn: _Turn, result: Result) -> None:
        if not result.text:
            return
        for language, audio in await turn.session.speak(result):
            stream = None
            if self.endpoint.flavour == "v2":
                self._stream_id += 1
                stream = str(self._stream_id)
                await self.ws.send(SynthesisStart(language, stream).encode(turn.request_id))
            if audio:
                await self.ws.send(SynthesisAudio(audio, stream).encode(turn.request_id))
            await self.ws.send(SynthesisEnd(None if audio else "synthesis failed", stream).encode(turn.request_id))


def _check_limits(message: UspMessage) -> None:
    """A JSON body's size and depth, before it is parsed."""
    try:
        check_json_limits(message.body if isinstance(message.body, str) else message.body.decode(), message.path.lower())
    except JsonLimitError as exc:
        raise MessageError(str(exc)) from None
    except UnicodeDecodeError:
        raise MessageError(f"{message.path.lower()}: the body is not JSON") from None


def _close_reason(reason: str) -> str:
    """A close reason fits in 123 bytes of UTF-8."""
    return reason.encode()[:120].decode(errors="ignore")


def _translations(result: Result, request: LanguageRequest) -> dict[str, str]:
    return {t: result.translations.get(t, "") for t in request.targets}


def _detected(result: Result) -> DetectedLanguage | None:
    return DetectedLanguage(result.language.language, result.language.confidence) if result.language else None


def _best(result: Result, turn: _Turn) -> dict | None:
    """The NBest entry of a final with text, when the turn asked for detailed output."""
    if not turn.detailed or not result.text:
        return None
    return nbest_entry(result.text, result.source(turn.session.request), result.details, result.start_sample, result.end_sample,
                       with_words=result.details is not None and bool(result.details.words),
                       profanity_mode=turn.session.profanity_mode)


def _ticks(result: Result) -> tuple[int, int]:
    return result.start_sample * TICKS_PER_SAMPLE, (result.end_sample - result.start_sample) * TICKS_PER_SAMPLE
