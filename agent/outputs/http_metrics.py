"""Prometheus metrics for ``/metrics``: counters read from the agent's status at scrape time,
histograms observed by the HTTP server's loop as events arrive.

A private registry per server, so an agent restarted in the same process (tests, benches) starts
from zero instead of colliding with the last one's metrics.
"""

from __future__ import annotations

import os
from typing import Callable

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

LATENCY_BUCKETS_S = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 15.0)
AZIMUTH_BUCKETS_DEG = tuple(range(30, 361, 30))
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")

# status key -> (metric name, help); counters only ever grow while the agent runs
COUNTERS = {
    "frames": ("parley_frames", "audio frames through the front end"),
    "overruns": ("parley_capture_overruns", "capture blocks lost to a full queue or a driver overflow"),
    "utterances": ("parley_utterances", "utterances the segmenter opened"),
    "finals": ("parley_finals", "final results received"),
    "reconnects": ("parley_uplink_reconnects", "uplink connections after the first"),
    "dropped_utterances": ("parley_dropped_utterances", "utterances given up (outbox full or no final in time)"),
    "pipeline_cpu_s": ("parley_pipeline_cpu_seconds", "CPU time of the pipeline thread (capture -> DSP -> VAD)"),
    "events_dropped": ("parley_http_events_dropped", "events the HTTP server's queue had no room for"),
}
GAUGES = {
    "outbox_depth": ("parley_outbox_utterances", "utterances waiting for their final"),
    "link_up": ("parley_link_up", "1 while the uplink is connected"),
    "last_frame_age_s": ("parley_last_frame_age_seconds", "time since the last audio frame"),
}


def thread_cpu_s(native_id: int | None) -> float:
    """User+system CPU seconds of one thread of this process, from /proc (0 if unknown)."""
    if not native_id:
        return 0.0
    try:
        with open(f"/proc/self/task/{native_id}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S  # utime, stime (fields 14, 15 of stat)


class _StatusCollector:
    def __init__(self, status: Callable[[], dict]):
        self._status = status

    def collect(self):
        status = self._status()
        for key, (name, doc) in COUNTERS.items():
            family = CounterMetricFamily(name, doc)
            family.add_metric([], float(status.get(key) or 0))
            yield family
        for key, (name, doc) in GAUGES.items():
            value = status.get(key)
            family = GaugeMetricFamily(name, doc)
            family.add_metric([], float("nan") if value is None else float(value))
            yield family


class Metrics:
    def __init__(self, status: Callable[[], dict]):
        self.registry = CollectorRegistry()
        self.registry.register(_StatusCollector(status))
        self.to_final = Histogram("parley_end_of_speech_to_final_seconds",
                                  "end-of-utterance event -> its final result", buckets=LATENCY_BUCKETS_S,
                                  registry=self.registry)
        self.to_first_audio = Histogram("parley_end_of_speech_to_first_audio_seconds",
                                        "end-of-utterance event -> first synthesized speech received",
                                        buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.azimuth = Histogram("parley_doa_azimuth_degrees", "talker direction of each final",
                                 buckets=AZIMUTH_BUCKETS_DEG, registry=self.registry)
        self.confidence = Histogram("parley_doa_confidence", "DOA confidence at the start of each utterance",
                                    buckets=CONFIDENCE_BUCKETS, registry=self.registry)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
