"""What ``/metrics`` says (Prometheus text format): load, latency and every refusal or close by reason.

Each gateway has its own registry (tests run several in one process). Gauges of state (sessions,
queued decodes, busy fraction, real-time factor) are read when scraped; events (admissions,
refusals, closes, finals) are counted as they happen. The busy fraction and the real-time factor
are over the last ``RATE_WINDOW_S`` of scrapes, so they say how loaded the gateway is now.
"""

from __future__ import annotations

import time
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from gateway.phrases import PhraseStarted
from gateway.session import TranslationSession
from parley_common.protocols.wav import WIRE_BYTES_PER_S

RATE_WINDOW_S = 60.0
LATENCY_BUCKETS_S = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
CLOSE_NAMES = {1000: "normal", 1001: "going away", 1002: "protocol error", 1003: "unsupported data",
               1007: "invalid payload", 1008: "policy", 1009: "too big", 1011: "internal error",
               1013: "try again later", 4429: "evicted (too many requests)"}


class GatewayMetrics:
    def __init__(self, gateway):
        self._gateway = gateway
        self.registry = CollectorRegistry(auto_describe=True)
        self.admitted = Counter("parley_gateway_sessions_admitted", "sessions admitted", registry=self.registry)
        self.refused = Counter("parley_gateway_refusals", "upgrades refused, by HTTP status and reason",
                               ["status", "reason"], registry=self.registry)
        self.evicted = Counter("parley_gateway_evictions", "idle sessions closed to make room, by reason",
                               ["reason"], registry=self.registry)
        self.closed = Counter("parley_gateway_closes", "WebSocket closes the gateway started, by code",
                              ["code", "name"], registry=self.registry)
        self.final_latency = Histogram(
            "parley_gateway_final_latency_seconds",
            "from the audio that ends a phrase (endpoint silence or the client's end of audio) to its final "
            "with translations", buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.audio_s = 0.0  # fed to recognition; counted on the event loop thread
        self._retired_busy_s = 0.0  # decoding time of recognizer workers already replaced
        self._recognizer = None
        self._samples = deque([(time.monotonic(), 0.0, 0.0)])  # (time, busy_s, audio_s) per scrape
        self.registry.register(_StateCollector(self))

    def count_close(self, code: int | None) -> None:
        if code is not None:
            self.closed.labels(str(code), CLOSE_NAMES.get(code, "other")).inc()

    def recognizer_busy_s(self) -> float:
        recognizer = self._gateway.engines.recognizer
        if recognizer is not self._recognizer:
            if self._recognizer is not None:
                self._retired_busy_s += self._recognizer.load.busy_s
            self._recognizer = recognizer
        return self._retired_busy_s + recognizer.load.busy_s

    def windowed_rates(self, busy_s: float, workers: int) -> tuple[float, float]:
        """(busy fraction of the workers, decode seconds per audio second) over the recent window."""
        now_s = time.monotonic()
        audio_s = self.audio_s
        self._samples.append((now_s, busy_s, audio_s))
        while len(self._samples) > 2 and now_s - self._samples[1][0] >= RATE_WINDOW_S:
            self._samples.popleft()
        then_s, then_busy_s, then_audio_s = self._samples[0]
        elapsed_s = now_s - then_s
        busy_fraction = (busy_s - then_busy_s) / (elapsed_s * workers) if elapsed_s > 0 and workers else 0.0
        rtf = (busy_s - then_busy_s) / (audio_s - then_audio_s) if audio_s > then_audio_s else 0.0
        return min(1.0, busy_fraction), rtf

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector:
    """Gauges read from the gateway at scrape time."""

    def __init__(self, metrics: GatewayMetrics):
        self._metrics = metrics

    def describe(self):
        return []

    def collect(self):
        gateway = self._metrics._gateway
        load = gateway.engines.recognizer.load
        busy_s = self._metrics.recognizer_busy_s()
        busy_fraction, rtf = self._metrics.windowed_rates(busy_s, load.workers)
        yield _gauge("parley_gateway_sessions", "open sessions", gateway.admission.sessions)
        yield _gauge("parley_gateway_sessions_max", "limits.max_sessions", gateway.config.limits.max_sessions)
        yield _gauge("parley_gateway_ready", "1 while /healthz says ready", int(gateway.readiness()[0] == 200))
        yield _gauge("parley_gateway_draining", "1 while draining", int(gateway.admission.draining))
        yield _gauge("parley_gateway_queue_depth", "decode requests waiting for a recognizer worker", load.waiting)
        yield _gauge("parley_gateway_recognizer_workers", "recognizer worker processes", load.workers)
        yield _gauge("parley_gateway_recognizer_busy_ratio",
                     f"fraction of worker time spent decoding over the last {RATE_WINDOW_S:g} s", busy_fraction)
        yield _gauge("parley_gateway_real_time_factor",
                     f"decode seconds per second of audio over the last {RATE_WINDOW_S:g} s", rtf)
        yield _counter("parley_gateway_recognizer_busy_seconds", "seconds recognizer workers decoded", busy_s)
        yield _counter("parley_gateway_audio_seconds", "seconds of audio fed to recognition", self._metrics.audio_s)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


class MeteredSession(TranslationSession):
    """A session that reports its audio and the latency of its finals, and says whether a phrase is
    open (a draining gateway closes a session between phrases; admission never evicts one mid-phrase)."""

    def __init__(self, metrics: GatewayMetrics, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._metrics = metrics
        self.phrase_open = False

    async def feed(self, pcm: bytes):
        self._metrics.audio_s += len(pcm) / WIRE_BYTES_PER_S
        started_s = time.monotonic()
        return self._observe(started_s, await super().feed(pcm))

    async def flush(self):
        started_s = time.monotonic()
        return self._observe(started_s, await super().flush())

    def _observe(self, started_s: float, results: list):
        for result in results:
            if isinstance(result, PhraseStarted):
                self.phrase_open = True
            elif result.final:
                self.phrase_open = False
                self._metrics.final_latency.observe(time.monotonic() - started_s)
        return results
