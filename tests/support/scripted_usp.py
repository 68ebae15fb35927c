"""A scripted Azure Speech USP service on loopback: a real websockets server that answers as Azure does.

It recognizes nothing: each turn's answer is "phrase N" covering the audio the turn brought, sent
when the client ends its stream (after ``answer_delay_s``) or, scripted, early, with any
RecognitionStatus; synthesis arrives in ``synthesis_pieces`` messages. Headers are written
``Name: value`` as Azure does. Everything seen and sent is recorded for the tests to check.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import ConnectionClosed

from tests.support.loopback_ws import LoopbackServer
from parley_common.protocols.usp import USP_V2_PATH, build_binary, new_request_id, parse_binary, parse_text, timestamp
from parley_common.protocols.wav import TICKS_PER_SAMPLE, WIRE_BYTES_PER_SAMPLE, streaming_header

SYNTHESIZED_PCM = bytes(range(256)) * 40  # what every synthesis "says"


@dataclass
class Script:
    answer_delay_s: float = 0.0  # a slow service: the answer comes this long after the client's end
    status: str = "Success"  # RecognitionStatus of the answer to a finished stream
    early_end_after_bytes: int | None = None  # answer and end the turn once it brought this much PCM
    early_status: str = "Success"
    early_turns: int = 1  # how many turns (counted over the server's life) end early
    synthesis_pieces: int = 1
    reject_bearer: bool = False  # 401 for Authorization: Bearer, as for a revoked token
    close_code: int | None = None  # close the connection with this code instead of answering a finished stream
    closes: int | None = None  # close so only this many times (counted over the server's life), then answer


@dataclass
class Turn:
    request_id: str
    connection: int
    stream_id: str | None = None
    service_tag: str = ""
    pcm: bytearray = field(default_factory=bytearray)
    audio_sizes: list[int] = field(default_factory=list)
    answered: bool = False


class ScriptedUsp(LoopbackServer):
    def __init__(self, script: Script | None = None):
        super().__init__(process_request=self._handshake)
        self.script = script or Script()
        self.events: list[tuple[float, str, str, str | None]] = []  # (time, "rx"/"tx", path, request id)
        self.handshakes: list[dict] = []  # path, query, headers, status
        self.contexts: dict[str, dict] = {}
        self.telemetry: list[tuple[str, dict]] = []
        self.turns: dict[str, Turn] = {}
        self.wavs_sent: list[bytes] = []
        self._phrases = 0
        self._early_left = self.script.early_turns
        self._closes_left = self.script.closes
        self._connections: set = set()

    def url(self, path: str) -> str:
        return self.base_url + path

    def drop_connections(self) -> None:
        """Close every connection with 1001 (going away): the client reconnects."""
        for ws in list(self._connections):
            asyncio.run_coroutine_threadsafe(ws.close(1001, "going away"), self._loop)

    def received(self, path: str) -> list[str]:
        """Request ids of the messages with ``path`` the client sent, in order."""
        return [rid for _, way, p, rid in self.events if way == "rx" and p.lower() == path]

    # -- the server --------------------------------------------------------------------------

    def _handshake(self, connection, request):
        url = urlsplit(request.path)
        headers = {k.lower(): v for k, v in request.headers.raw_items()}
        status = 401 if self.script.reject_bearer and "authorization" in headers else 101
        self.handshakes.append({"path": url.path, "query": parse_qs(url.query), "headers": headers, "status": status})
        if status == 401:
            return connection.respond(401, "Access denied due to invalid subscription key or token.\n")
        return None

    async def _serve(self, ws) -> None:
        number = len(self.handshakes)
        self._connections.add(ws)
        v2 = urlsplit(ws.request.path).path == USP_V2_PATH
        try:
            async for raw in ws:
                message = parse_text(raw) if isinstance(raw, str) else parse_binary(raw)
                rid, path = message.request_id, message.path.lower()
                self.events.append((time.monotonic(), "rx", message.path, rid))
                if path == "speech.context":
                    self.contexts[rid] = message.json()
                elif path == "telemetry":
                    self.telemetry.append((rid, message.json()))
                elif path == "audio":
                    await self._audio(ws, v2, number, rid, message)
        except ConnectionClosed:
            pass
        finally:
            self._connections.discard(ws)

    async def _audio(self, ws, v2: bool, number: int, rid: str, message) -> None:
        payload = message.body
        turn = self.turns.get(rid)
        if turn is None:
            turn = self.turns[rid] = Turn(rid, number, message.headers.get("x-streamid"), new_request_id())
            turn.audio_sizes.append(len(payload))
            await self._send(ws, "turn.start", rid, {"context": {"serviceTag": turn.service_tag}})
            return  # the RIFF header
        turn.audio_sizes.append(len(payload))
        if turn.answered:
            return  # Azure discards audio of a turn it ended
        if payload:
            turn.pcm += payload
            script = self.script
            if script.early_end_after_bytes and self._early_left > 0 and len(turn.pcm) >= script.early_end_after_bytes:
                self._early_left -= 1
                await self._answer(ws, v2, turn, script.early_status, 0.0)
            return
        if self.script.close_code is not None and self._closes_left != 0:
            self._closes_left = None if self._closes_left is None else self._closes_left - 1
            await ws.close(self.script.close_code, "scripted close")
            return
        asyncio.ensure_future(self._answer(ws, v2, turn, self.script.status, self.script.answer_delay_s))

    async def _answer(self, ws, v2: bool, turn: Turn, status: str, delay_s: float) -> None:
        turn.answered = True
        await asyncio.sleep(delay_s)
        rid = turn.request_id
        try:
            if status == "Success":
                self._phrases += 1
                text, translated = f"phrase {self._phrases}", f"frase {self._phrases}"
                duration = len(turn.pcm) // WIRE_BYTES_PER_SAMPLE * TICKS_PER_SAMPLE
                translations = [{"Language": "es", "Text": translated}]
                if v2:
                    await self._send(ws, "translation.response", rid, {
                        "SpeechPhrase": {"RecognitionStatus": "Success", "DisplayText": text, "Offset": 0,
                                         "Duration": duration},
                        "TranslationStatus": "Success", "Translations": translations})
                else:
                    await self._send(ws, "translation.phrase", rid, {
                        "RecognitionStatus": "Success", "Text": text, "Offset": 0, "Duration": duration,
                        "Translation": {"TranslationStatus": "Success", "Translations": translations}})
                if self._voice(v2, ws, rid):
                    await self._synthesize(ws, v2, rid)
            else:
                body = {"RecognitionStatus": status, "Offset": 0, "Duration": 0}
                await self._send(ws, "translation.response" if v2 else "translation.phrase", rid,
                                 {"SpeechPhrase": body} if v2 else body)
            await self._send(ws, "speech.endDetected", rid, {"Offset": 0})
            await self._send(ws, "turn.end", rid, None)
        except ConnectionClosed:
            pass

    def _voice(self, v2: bool, ws, rid: str) -> bool:
        if v2:
            return bool(self.contexts.get(rid, {}).get("synthesis", {}).get("defaultVoices"))
        return "voice" in parse_qs(urlsplit(ws.request.path).query)

    async def _synthesize(self, ws, v2: bool, rid: str) -> None:
        wav = streaming_header() + SYNTHESIZED_PCM
        self.wavs_sent.append(wav)
        size = -(-len(wav) // self.script.synthesis_pieces)
        pieces = [wav[i:i + size] for i in range(0, len(wav), size)]
        if v2:
            await self._send(ws, "audio.start", rid, {"TranslationLanguage": "es"}, {"X-StreamId": "7"})
            for piece in pieces:
                await self._send_binary(ws, "audio", rid, piece, {"X-StreamId": "7", "Content-Type": "audio/x-wav"})
            await self._send(ws, "audio.end", rid, {"Status": "Success"}, {"X-StreamId": "7"})
        else:
            for piece in pieces:
                await self._send_binary(ws, "translation.synthesis", rid, piece, {"Content-Type": "audio/x-wav"})
            await self._send(ws, "translation.synthesis.end", rid, {"SynthesisStatus": "Success"})

    async def _send(self, ws, path: str, rid: str, body: dict | None, extra: dict | None = None) -> None:
        headers = {"X-RequestId": rid, "Path": path, "X-Timestamp": timestamp(), **(extra or {})}
        if body is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
        text = "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n" + (json.dumps(body) if body else "")
        self.events.append((time.monotonic(), "tx", path, rid))
        await ws.send(text)

    async def _send_binary(self, ws, path: str, rid: str, payload: bytes, extra: dict) -> None:
        self.events.append((time.monotonic(), "tx", path, rid))
        await ws.send(build_binary(path, rid, payload, extra))
