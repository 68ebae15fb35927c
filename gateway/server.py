"""The gateway's WebSocket/HTTP front door: routing, auth, limits; protocols live in their modules.

    GET /speech/translate                          Translator Speech v1
    GET /speech/translation/cognitiveservices/v1   Azure USP, v1 flavour (languages in the query)
    GET /stt/speech/universal/v2                   Azure USP, v2 flavour (languages in speech.context)
    GET /languages?api-version=1.0&scope=...       what is installed
    GET /healthz                                   liveness
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response

from gateway.config import GatewayConfig
from gateway.engines.workers import RecognizerError
from gateway.engines.registry import Engines, LanguageError, LanguageRequest
from gateway.session import TranslationSession
from gateway.translator_v1 import serve_translator_v1
from gateway.usp import UspConnection
from parley_common.protocols.translator_v1 import PATH as V1_PATH
from parley_common.protocols.usp import USP_V1_PATH, USP_V2_PATH

log = logging.getLogger("parley.gateway")

WS_PATHS = (V1_PATH, USP_V1_PATH, USP_V2_PATH)
CLOSE_INTERNAL_ERROR = 1011


def _response(status: int, body: str | dict, content_type: str = "text/plain; charset=utf-8") -> Response:
    if isinstance(body, dict):
        body, content_type = json.dumps(body, ensure_ascii=False), "application/json; charset=utf-8"
    data = body.encode()
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(data)))])
    return Response(status, HTTPStatus(status).phrase, headers, data)


def _query_list(query: dict[str, list[str]], name: str) -> list[str]:
    """Repeated and comma-separated values, case-insensitive names."""
    values = [v for key, vs in query.items() if key.lower() == name.lower() for v in vs]
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _echo_usp(connection, offered):
    """Echo USP to Speech SDK clients; Translator v1 clients offer no subprotocol and need none."""
    return "USP" if "USP" in offered else None


class Gateway:
    def __init__(self, config: GatewayConfig):
        self.config = config
        self.engines = Engines(config)
        self.executor = ThreadPoolExecutor(config.engine_threads, thread_name_prefix="engine")
        self._key = config.resolved_key()
        self._sessions = 0
        self.sessions_served = 0

    # -- HTTP phase ----------------------------------------------------------------------------

    def process_request(self, connection, request):
        """Answer plain HTTP, refuse bad upgrades before they become sessions; None = accept."""
        url = urlsplit(request.path)
        query = parse_qs(url.query)
        if url.path == "/healthz":
            return _response(200, {"status": "ok", "sessions": self._sessions})
        if url.path == "/languages":
            scopes = _query_list(query, "scope") or ["text"]
            return _response(200, self.engines.languages_document(scopes))
        if url.path not in WS_PATHS:
            return _response(404, f"no such endpoint {url.path!r}; endpoints: {', '.join(WS_PATHS)}, /languages, /healthz")
        refusal = self._check_key(request.headers, query)
        if refusal is not None:
            return refusal
        if self._sessions >= self.config.limits.max_sessions:
            return _response(429, f"too many sessions (limit {self.config.limits.max_sessions}); retry later")
        if url.path in (V1_PATH, USP_V1_PATH) or _query_list(query, "to"):
            try:
                connection.parley_request = self._languages_from_query(url.path, query)
            except LanguageError as exc:
                return _response(400, str(exc))
        return None

    def _check_key(self, headers, query) -> Response | None:
        if not self._key:
            return None
        offered = headers.get("Ocp-Apim-Subscription-Key")
        auth = headers.get("Authorization", "")
        if not offered and auth.lower().startswith("bearer "):
            offered = auth[7:].strip()
        for name in ("subscription-key", "Ocp-Apim-Subscription-Key", "access_token"):
            offered = offered or (_query_list(query, name) or [None])[0]
        if not offered:
            return _response(401, "a subscription key is required (Ocp-Apim-Subscription-Key or Authorization: Bearer)")
        if not hmac.compare_digest(offered.encode(), self._key.encode()):
            return _response(403, "the subscription key is not valid")
        return None

    def _languages_from_query(self, path: str, query) -> LanguageRequest:
        source = (_query_list(query, "from") or [self.config.source_language])[0]
        features = {f.lower() for f in _query_list(query, "features")}
        voice = (_query_list(query, "voice") or [None])[0]
        speech = "texttospeech" in features or (path != V1_PATH and voice is not None)
        if path == V1_PATH and _query_list(query, "api-version") not in ([], ["1.0"]):
            raise LanguageError("api-version must be 1.0")
        return self.engines.resolve(source, _query_list(query, "to"), voice, speech)

    # -- WebSocket phase -----------------------------------------------------------------------

    async def handle(self, ws) -> None:
        self._sessions += 1
        self.sessions_served += 1
        try:
            url = urlsplit(ws.request.path)
            request = getattr(ws, "parley_request", None)
            if url.path == V1_PATH:
                query = parse_qs(url.query)
                features = {f.lower() for f in _query_list(query, "features")}
                session = self._new_session(request, partials="partial" in features)
                await serve_translator_v1(ws, session, features, self.config.limits)
            else:
                flavour = "v1" if url.path == USP_V1_PATH else "v2"
                connection = UspConnection(
                    ws, flavour, lambda req: self._new_session(req, partials=True), self.engines.resolve,
                    request, self.config.limits)
                await connection.serve()
        except RecognizerError as exc:
            log.warning("closing a session: %s", exc)
            await ws.close(CLOSE_INTERNAL_ERROR, "recognizer failed; reconnect and resend")
        finally:
            self._sessions -= 1

    def _new_session(self, request: LanguageRequest, partials: bool) -> TranslationSession:
        return TranslationSession(self.engines, request, partials, self.executor)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.engines.close()


async def run_gateway(config: GatewayConfig, stop: asyncio.Event | None = None,
                      on_ready=None) -> None:
    """Serve until ``stop`` is set (or forever)."""
    gateway = Gateway(config)
    await asyncio.get_running_loop().run_in_executor(gateway.executor, gateway.engines.recognizer.warm_up)
    try:
        async with serve(gateway.handle, config.host, config.port, process_request=gateway.process_request,
                         max_size=config.limits.max_message_bytes, select_subprotocol=_echo_usp,
                         ping_interval=20, ping_timeout=20, close_timeout=2) as server:
            port = server.sockets[0].getsockname()[1]
            log.info("parley-gateway listening on ws://%s:%d (languages: %s)", config.host, port,
                     ", ".join(gateway.engines.languages_document(["speech"])["speech"]))
            if on_ready:
                on_ready(port, gateway)
            await (stop.wait() if stop else asyncio.Future())
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

    def stop(self) -> None:
        if self._loop and self._stop and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)

    def __enter__(self) -> "GatewayThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
