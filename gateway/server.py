"""The gateway's WebSocket/HTTP front door: routing, auth, limits; protocols live in their modules.

    GET /speech/translate                          Translator Speech v1
    GET /speech/translation/cognitiveservices/v1   Azure USP, v1 flavour (languages in the query)
    GET /stt/speech/universal/v2                   Azure USP, v2 flavour (languages in speech.context;
    GET /speech/universal/v2                       none: speech-to-text)
    GET /speech/recognition/{interactive,conversation,dictation}/cognitiveservices/v1
                                                   Azure USP speech-to-text (language in the query)
    POST /sts/v1.0/issueToken                      a 10-minute bearer token for a valid key
    GET /languages?api-version=1.0&scope=...       what is installed
    GET /healthz                                   readiness: 200 ready, 503 starting/full/draining
    GET /metrics                                   Prometheus: load, latency, refusals and closes
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response

from gateway import health, profanity
from gateway.admission import Admission, Refusal, Slot
from gateway.client_address import ProxiedConnection, client_address, trusted_networks
from gateway.config import GatewayConfig
from gateway.engines.recognizers import Recognizers
from gateway.engines.workers import RecognizerError
from gateway.engines.registry import Engines, LanguageError, LanguageRequest
from gateway.metrics import GatewayMetrics, MeteredSession
from gateway.tokens import TOKEN_PATH, TokenError, TokenIssuer, looks_like_token
from gateway.translator_v1 import serve_translator_v1
from gateway.turn_options import PhraseTuning, TurnOptionError, TurnOptions
from gateway.usp import UspConnection, UspEndpoint
from parley_common.languages import base_language
from parley_common.protocols.translator_v1 import PATH as V1_PATH
from parley_common.protocols.usp import RECOGNITION_PATHS, USP_V1_PATH, USP_V2_PATH
from parley_common.protocols.usp_messages import OUTPUT_FORMATS

log = logging.getLogger("parley.gateway")

V2_PATHS = (USP_V2_PATH, "/speech/universal/v2")  # the second: the path Microsoft's samples give endpoint=
WS_PATHS = (V1_PATH, USP_V1_PATH, *V2_PATHS, *RECOGNITION_PATHS)
CLOSE_INTERNAL_ERROR = 1011
V1_SPEECH_FORMATS = ("audio/wav", "audio/mp3")


def _response(status: int, body: str | dict, content_type: str = "text/plain; charset=utf-8",
              extra: tuple[tuple[str, str], ...] = ()) -> Response:
    """Errors carry their reason in the body and, for clients that show only the status line (the
    Speech SDK), in the reason phrase too."""
    if isinstance(body, dict):
        body, content_type = json.dumps(body, ensure_ascii=False), "application/json; charset=utf-8"
    data = body.encode()
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(data))), *extra])
    phrase = HTTPStatus(status).phrase
    if status >= 400:
        phrase = f"{phrase}: {' '.join(body.split())}".encode("ascii", "replace").decode()[:200]
        log.info("refused with HTTP %d: %s", status, " ".join(body.split())[:200])  # websockets' own lines are quiet below debug
    return Response(status, phrase, headers, data)


class QueryError(ValueError):
    """A missing or unsupported query parameter: 400 with this reason."""


def _query_list(query: dict[str, list[str]], name: str) -> list[str]:
    """Repeated and comma-separated values, case-insensitive names."""
    values = [v for key, vs in query.items() if key.lower() == name.lower() for v in vs]
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _query_first(query: dict[str, list[str]], name: str) -> str | None:
    """The first of :func:`_query_list`'s values, None when there is none."""
    values = _query_list(query, name)
    return values[0] if values else None


def _required(query: dict[str, list[str]], name: str) -> str:
    values = _query_list(query, name)
    if not values:
        raise QueryError(f"the query parameter {name!r} is required")
    return values[0]


def _echo_usp(connection, offered):
    """Echo USP to Speech SDK clients; Translator v1 clients offer no subprotocol and need none."""
    return "USP" if "USP" in offered else None


class Gateway:
    def __init__(self, config: GatewayConfig):
        self.config = config
        self.engines = Engines(config)
        self.executor = ThreadPoolExecutor(config.engine_threads, thread_name_prefix="engine")
        self._key = config.resolved_key()
        self.tokens = TokenIssuer(self._key)
        self.metrics = GatewayMetrics(self)
        self.admission = Admission(config.limits, lambda slot, reason: self.metrics.evicted.labels(reason).inc())
        self.trusted_proxies = trusted_networks(config.limits.trusted_proxies)
        self.engines_ready = False
        self.sessions_served = 0
        self.recognizer_generation = 0  # how many times idle workers were replaced

    # -- HTTP phase ----------------------------------------------------------------------------

    def readiness(self) -> tuple[int, dict]:
        return health.readiness(self)

    def drain(self) -> None:
        """Refuse new sessions, close open ones between phrases (SIGUSR1): see ``gateway.health``."""
        asyncio.ensure_future(health.drain(self))

    def process_request(self, connection, request):
        response = self._answer_request(connection, request)
        upgrade = urlsplit(request.path).path in WS_PATHS  # a 503 /healthz is an answer, not a refusal
        if upgrade and response is not None and response.status_code >= 400:
            kind = getattr(connection, "parley_refusal", None) or HTTPStatus(response.status_code).phrase.lower()
            self.metrics.refused.labels(str(response.status_code), kind).inc()
        return response

    def _answer_request(self, connection, request):
        """Answer plain HTTP, refuse bad upgrades before they become sessions; None = accept."""
        url = urlsplit(request.path)
        query = parse_qs(url.query)
        if url.path == "/healthz":
            return _response(*self.readiness())
        if url.path == "/metrics":
            return _response(200, self.metrics.render().decode(), "text/plain; version=0.0.4; charset=utf-8")
        if url.path == "/languages":
            scopes = _query_list(query, "scope") or ["text"]
            return _response(200, self.engines.languages_document(scopes))
        if url.path == TOKEN_PATH:
            return self._issue_token(request)
        if url.path not in WS_PATHS:
            return _response(404, f"no such endpoint {url.path!r}; endpoints: {', '.join(WS_PATHS)}, /languages, /healthz")
        refusal = self._check_key(request.headers, query)
        if refusal is not None:
            return refusal
        try:
            connection.parley_request = self._request_from_query(url.path, query)
            connection.parley_format = self._output_format(url.path, query)
            connection.parley_profanity = self._profanity_mode(url.path, query)
            connection.parley_options = TurnOptions.from_query(query)
        except (LanguageError, QueryError, profanity.ProfanityError, TurnOptionError) as exc:
            return _response(400, str(exc))
        slot = self.admission.admit(client_address(connection, request.headers, self.trusted_proxies), connection)
        if isinstance(slot, Refusal):
            connection.parley_refusal = slot.kind
            return _response(slot.status, slot.reason, extra=(("Retry-After", str(slot.retry_after_s)),))
        self.metrics.admitted.inc()
        connection.parley_slot = slot
        asyncio.ensure_future(self._release_when_closed(connection, slot))
        return None

    async def _release_when_closed(self, connection, slot: Slot) -> None:
        """The slot frees when the connection ends, whether or not its handshake completed."""
        await connection.wait_closed()
        self.admission.release(slot)
        close = connection.protocol.close_sent
        if close is not None and not connection.protocol.close_rcvd_then_sent:
            self.metrics.count_close(close.code)

    def _issue_token(self, request) -> Response:
        """``POST /sts/v1.0/issueToken`` with the key in ``Ocp-Apim-Subscription-Key``: a 10-minute JWT."""
        if request.method != "POST":
            return _response(405, f"use POST for {TOKEN_PATH}", extra=(("Allow", "POST"),))
        offered = request.headers.get("Ocp-Apim-Subscription-Key")
        if self._key and not offered:
            return _response(401, "a subscription key is required in Ocp-Apim-Subscription-Key")
        if self._key and not hmac.compare_digest(offered.encode(), self._key.encode()):
            return _response(401, "the subscription key is not valid")
        return _response(200, self.tokens.issue(), "application/jwt; charset=us-ascii")

    def _check_key(self, headers, query) -> Response | None:
        if not self._key:
            return None
        offered = headers.get("Ocp-Apim-Subscription-Key")
        auth = headers.get("Authorization", "") or (_query_list(query, "Authorization") or [""])[0]
        if not offered and auth.lower().startswith("bearer "):
            offered = auth[7:].strip()
        for name in ("subscription-key", "Ocp-Apim-Subscription-Key", "access_token"):
            offered = offered or _query_first(query, name)
        if not offered:
            return _response(401, "a subscription key is required (Ocp-Apim-Subscription-Key or Authorization: Bearer)")
        if looks_like_token(offered):
            try:
                self.tokens.check(offered)
            except TokenError as exc:
                return _response(401, str(exc))
            return None
        if not hmac.compare_digest(offered.encode(), self._key.encode()):
            return _response(403, "the subscription key is not valid")
        return None

    @staticmethod
    def process_response(connection, request, response) -> None:
        """Every answer carries a server-made ``X-RequestId`` for troubleshooting (Translator v1 documents it)."""
        response.headers["X-RequestId"] = uuid.uuid4().hex

    def _request_from_query(self, path: str, query) -> LanguageRequest | None:
        """The languages a URL asks for; None on the v2 path, whose turns carry them in speech.context."""
        if path in RECOGNITION_PATHS:
            return self.recognition_request(_required(query, "language"))
        if path in V2_PATHS and not (_query_list(query, "to") and _query_list(query, "from")):
            return None  # the languages (or the candidates to identify among) come in speech.context
        if path == USP_V1_PATH and not _query_list(query, "from"):
            return None  # SDK <= 1.42's auto-detect: to= only, the candidates in speech.context
        if path == V1_PATH:
            version = _required(query, "api-version")
            if version != "1.0":
                raise QueryError(f"api-version {version!r} is not supported; use api-version=1.0")
            speech_format = ((_query_list(query, "format") or ["audio/wav"])[0]).lower()
            if speech_format not in V1_SPEECH_FORMATS:
                raise QueryError(f"format {speech_format!r} is not supported; use {' or '.join(V1_SPEECH_FORMATS)}")
        source = _required(query, "from")
        features = {f.lower() for f in _query_list(query, "features")}
        voice = _query_first(query, "voice")
        speech = "texttospeech" in features or (path != V1_PATH and voice is not None)
        return self.resolve(source, _query_list(query, "to"), voice, speech)

    @staticmethod
    def _output_format(path: str, query) -> str:
        value = ((_query_list(query, "format") or ["simple"])[0]).lower()
        if path in RECOGNITION_PATHS and value not in OUTPUT_FORMATS:
            raise QueryError(f"format {value!r} is not supported; use one of {', '.join(OUTPUT_FORMATS)}")
        return value

    @staticmethod
    def _profanity_mode(path: str, query) -> str:
        if path == V1_PATH:
            return profanity.v1_mode(_query_first(query, "ProfanityAction"), _query_first(query, "ProfanityMarker"))
        return profanity.usp_mode(_query_first(query, "profanity"))

    def resolve(self, source: str, targets: list[str], voice: str | None, speech_wanted: bool) -> LanguageRequest:
        """Translation when there are targets, else speech-to-text of ``source``."""
        if not targets and not voice:
            return self.recognition_request(source)
        return self.engines.resolve(source, targets, voice, speech_wanted)

    def recognition_request(self, source: str) -> LanguageRequest:
        installed = self.engines.recognizer.languages
        if base_language(source) not in installed:
            raise LanguageError(f"unsupported language {source!r}; installed: {', '.join(installed.values())}")
        return LanguageRequest(source, ())

    # -- WebSocket phase -----------------------------------------------------------------------

    async def handle(self, ws) -> None:
        self.sessions_served += 1
        slot = ws.parley_slot
        try:
            url = urlsplit(ws.request.path)
            request = ws.parley_request
            if url.path == V1_PATH:
                query = parse_qs(url.query)
                features = {f.lower() for f in _query_list(query, "features")}
                session = self._new_session(slot, request, "partial" in features, ws.parley_profanity)
                mp3 = (_query_list(query, "format") or [""])[0].lower() == "audio/mp3"
                await serve_translator_v1(ws, session, features, self.config.limits, slot, mp3)
            else:
                # v1 results on the v1 paths, except for SDK <= 1.42's auto-detect (no from=): it reads the
                # identified language only from v2 results (translation.response), on any path
                flavour = "v1" if url.path in (USP_V1_PATH, *RECOGNITION_PATHS) and request is not None else "v2"
                endpoint = UspEndpoint(flavour, ws.parley_format, ws.parley_profanity, ws.parley_options,
                                       tuple(_query_list(parse_qs(url.query), "to")),
                                       None if url.path == USP_V1_PATH else self.config.source_language)
                connection = UspConnection(
                    ws, endpoint, lambda req, mode, tuning: self._new_session(slot, req, True, mode, tuning),
                    self.resolve,
                    self.engines.resolve_identified, request, self.config.limits, slot)
                await connection.serve()
        except RecognizerError as exc:
            log.warning("closing a session: %s", exc)
            await ws.close(CLOSE_INTERNAL_ERROR, "recognizer failed; reconnect and resend")
        finally:
            self.admission.release(slot)

    async def release_idle_recognizers(self) -> None:
        """Recognizer workers keep the memory that many streams made them grow; once no session has
        been open for ``release_recognizers_after_s``, fresh workers replace them (once per idle spell)."""
        after_s = self.config.limits.release_recognizers_after_s
        loop = asyncio.get_running_loop()
        served_by_current = 0  # sessions_served when the current workers took over
        while True:
            await asyncio.sleep(min(max(after_s / 4, 0.2), 10.0))
            idle_since = self.admission.last_busy_s
            if (self.admission.sessions or self.sessions_served == served_by_current
                    or time.monotonic() - idle_since < after_s):
                continue
            fresh = await loop.run_in_executor(self.executor, self._warm_recognizers)
            if self.admission.sessions or self.admission.last_busy_s != idle_since:
                await loop.run_in_executor(self.executor, fresh.close)  # someone came meanwhile: next time
                continue
            old, self.engines.recognizer = self.engines.recognizer, fresh
            served_by_current = self.sessions_served
            self.recognizer_generation += 1
            log.info("recognizer workers restarted after %.0f s without sessions", after_s)
            await loop.run_in_executor(self.executor, old.close)

    def _warm_recognizers(self) -> Recognizers:
        recognizers = Recognizers(self.config.recognition)
        recognizers.warm_up()
        return recognizers

    def _new_session(self, slot: Slot, request: LanguageRequest, partials: bool, profanity_mode: str,
                     tuning: PhraseTuning = PhraseTuning()) -> MeteredSession:
        """The slot knows its session's phrase state: drain and eviction wait for a phrase to end."""
        slot.session = MeteredSession(self.metrics, self.engines, request, partials, self.executor, profanity_mode,
                                      tuning)
        return slot.session

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.engines.close()


async def run_gateway(config: GatewayConfig, stop: asyncio.Event | None = None,
                      on_ready=None) -> None:
    """Serve until ``stop`` is set (or forever)."""
    gateway = Gateway(config)
    await asyncio.get_running_loop().run_in_executor(gateway.executor, gateway.engines.recognizer.warm_up)
    await asyncio.get_running_loop().run_in_executor(gateway.executor, gateway.engines.warm_up_profanity)
    gateway.engines_ready = True
    try:
        async with serve(gateway.handle, config.host, config.port, process_request=gateway.process_request,
                         process_response=gateway.process_response,
                         max_size=config.limits.max_message_bytes, select_subprotocol=_echo_usp,
                         create_connection=ProxiedConnection.for_networks(gateway.trusted_proxies),
                         # A Whisper final takes ~0.5-2 s, during which a session reads no audio; with
                         # websockets' 16 queued messages reading would pause and pings go unanswered.
                         max_queue=config.limits.receive_queue_messages,
                         ping_interval=20, ping_timeout=20, close_timeout=2) as server:
            port = server.sockets[0].getsockname()[1]
            log.info("parley-gateway listening on ws://%s:%d (languages: %s)", config.host, port,
                     ", ".join(gateway.engines.languages_document(["speech"])["speech"]))
            if on_ready:
                on_ready(port, gateway)
            releaser = asyncio.ensure_future(gateway.release_idle_recognizers())
            try:
                await (stop.wait() if stop else asyncio.Future())
            finally:
                releaser.cancel()
    finally:
        gateway.close()


class GatewayThread:
    """A real gateway on its own event loop in a background thread: for tests, benches and the demo.

    ``with GatewayThread() as gw: ... gw.base_url`` — port 0 (any free port) unless configured.
    """

    def __init__(self, config: GatewayConfig | None = None):
        self.config = config or GatewayConfig(port=0)
        self.host = self.config.host
        self.port = 0
        self.gateway: Gateway | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="gateway", daemon=True)

    @property
    def base_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def _run(self) -> None:
        async def main():
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await run_gateway(self.config, stop=self._stop, on_ready=self._on_ready)

        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced to the starting thread
            self._error = exc
            self._ready.set()

    def _on_ready(self, port: int, gateway: Gateway) -> None:
        self.port, self.gateway = port, gateway
        self._ready.set()

    def start(self, timeout_s: float = 30.0) -> "GatewayThread":
        self._thread.start()
        if not self._ready.wait(timeout_s) or self._error:
            raise RuntimeError(f"gateway did not start: {self._error}")
        return self

    def drain(self) -> None:
        """What SIGUSR1 does to a gateway process (see ``gateway.health``)."""
        if self._loop is None or self.gateway is None:
            raise RuntimeError("drain() before start()")
        self._loop.call_soon_threadsafe(self.gateway.drain)

    def close(self) -> None:
        """Idempotent; safe before ``start()``."""
        if self._loop and self._stop and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def __enter__(self) -> "GatewayThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
