"""Gateway configuration (``config/gateway.yaml``); every key has a default, so no file is needed."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gateway.engines.whisper_models import PACKAGED
from parley_common.vad.engines import VadConfig


@dataclass(frozen=True)
class LimitsConfig:
    max_sessions: int = field(default=8, metadata={"min": 1, "max": 1000, "help": "concurrent sessions; more get 429/4429"})
    max_sessions_per_address: int | None = field(
        default=None, metadata={"min": 1, "max": 1000,
                                "help": "sessions one client address may hold (null: no cap but max_sessions; "
                                        "behind a NAT every room has one address)"})
    address_quotas: dict[str, int] = field(
        default_factory=dict, metadata={"help": "network (CIDR) -> sessions each of its addresses may hold; the "
                                                "most specific wins over max_sessions_per_address"})
    trusted_proxies: tuple[str, ...] = field(
        default=(), metadata={"help": "balancer addresses/networks (CIDR) whose PROXY protocol v2 header or "
                                      "X-Forwarded-For names the client; from anyone else both are refused or ignored"})
    streaming_rate: float = field(
        default=0.5, metadata={"min": 0.05, "max": 1.0,
                               "help": "a session is active while its audio averages this fraction of real time; "
                                       "a trickle of bytes is idle"})
    drain_timeout_s: float = field(
        default=60.0, metadata={"min": 1.0, "help": "draining: sessions still in a phrase after this are closed "
                                                    "anyway (1001; clients resend what has no final)"})
    max_message_bytes: int = field(default=1 << 20, metadata={"min": 1024, "help": "largest WebSocket message accepted"})
    max_audio_s: float = field(default=3600.0, metadata={"min": 1.0, "help": "audio per connection before a clean close"})
    idle_timeout_s: float = field(
        default=30.0, metadata={"min": 1.0, "help": "no audio for this long closes the session (telemetry is not audio)"})
    idle_yield_s: float = field(
        default=5.0, metadata={"min": 0.0, "help": "at a session cap or quota, a session without real-time audio "
                                                   "this long gives way (closed with 4429)"})
    release_recognizers_after_s: float = field(
        default=300.0, metadata={"min": 1.0, "help": "no session for this long: fresh recognizer workers replace "
                                                    "the old ones, returning the memory decoding grew"})
    receive_queue_messages: int = field(
        default=1024, metadata={"min": 16, "max": 100000,
                                "help": "messages held per connection while a final decodes; beyond it reading (and pings) pause"})

    def __post_init__(self) -> None:
        for network in (*self.trusted_proxies, *self.address_quotas):
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not an IP address or network; allowed: e.g. 10.0.0.5, "
                                 "10.0.0.0/24, ::1") from None
        for network, sessions in self.address_quotas.items():
            if sessions < 1:
                raise ValueError(f"address_quotas.{network}: {sessions} sessions; allowed: >= 1")


@dataclass(frozen=True)
class SourceLanguageConfig:
    engine: Literal["whisper", "pocketsphinx"] = field(
        default="whisper", metadata={"help": "whisper: accurate; pocketsphinx: light, English only"})
    model: str = field(
        default="tiny.en",
        metadata={"help": "whisper: tiny.en | base (packaged), or the path of a CTranslate2 Whisper model directory"})
    beam_size: int = field(
        default=5, metadata={"min": 1, "max": 10,
                             "help": "whisper, finals only (partials are always greedy): 1 is greedy; 5 pays for "
                                     "Spanish with base and for English through the array with tiny.en, at the "
                                     "same CPU (bench/beam_wer.py, bench/array_wer.py --beam)"})
    no_speech_threshold: float = field(
        default=0.6, metadata={"min": 0.0, "max": 1.0, "help": "whisper: above this (and unsure words) a phrase is noise"})
    log_prob_threshold: float = field(
        default=-1.0, metadata={"min": -10.0, "max": 0.0, "help": "whisper: average token log-probability of speech"})
    compression_ratio_threshold: float = field(
        default=2.4, metadata={"min": 1.0, "max": 10.0, "help": "whisper: text compressing better is a repetition loop"})

    def __post_init__(self) -> None:
        if self.engine == "whisper" and self.model not in PACKAGED and not Path(self.model).expanduser().is_dir():
            raise ValueError(f"model {self.model!r} is not a packaged model ({', '.join(PACKAGED)}) "
                             "nor an existing CTranslate2 Whisper directory")


def _default_languages() -> dict[str, SourceLanguageConfig]:
    # Beam 5 for finals (the field's default): espeak Spanish through the gateway with base 0.44 -> 0.35
    # WER; English through the 4-mic array in a noisy room with tiny.en 0.43 -> 0.37 (clean English
    # 0.081 -> 0.097, two words of 124); the encoder dominates, so the CPU per final is the same.
    return {"en-US": SourceLanguageConfig(), "es-ES": SourceLanguageConfig(model="base")}


@dataclass(frozen=True)
class RecognitionConfig:
    languages: dict[str, SourceLanguageConfig] = field(
        default_factory=_default_languages,
        metadata={"help": "source language (BCP-47) -> recognizer; the first is the default"})
    processes: int = field(
        default=2, metadata={"min": 1, "max": 64, "help": "recognizer worker processes (one thread each); one per core"})
    model_cache_dir: str | None = field(
        default=None, metadata={"help": "where split packaged models are joined (default $CACHE_DIRECTORY/whisper under systemd, else ~/.cache/parley-gateway/whisper)"})
    endpoint_silence_ms: int = field(
        default=600, metadata={"min": 100, "max": 5000, "help": "silence that ends a phrase (server-side endpointing)"})
    partial_interval_ms: int = field(
        default=1000, metadata={"min": 50, "help": "at most one partial per interval, and only from an idle worker"})
    vad: VadConfig = field(default_factory=VadConfig, metadata={"help": "the agent's VAD, for endpointing"})
    max_phrase_s: float = field(default=30.0, metadata={"min": 2.0, "max": 120.0, "help": "a phrase is finalised after this long"})
    language_id_model: str = field(
        default="base", metadata={"help": "multilingual Whisper model that identifies the language when a client "
                                          "gives candidates (languageId); tiny.en cannot"})
    language_override_probability: float = field(
        default=0.97, metadata={"min": 0.5, "max": 1.0,
                               "help": "a client's expected language stands unless another is at least this probable (over 2.5 s of audio)"})

    def __post_init__(self) -> None:
        if not self.languages:
            raise ValueError("recognition.languages: at least one source language is needed")
        if self.language_id_model.endswith(".en"):
            raise ValueError(f"language_id_model: {self.language_id_model} knows only English; use a multilingual model (base)")
        if self.language_id_model not in PACKAGED and not Path(self.language_id_model).expanduser().is_dir():
            raise ValueError(f"language_id_model {self.language_id_model!r} is not a packaged model "
                             f"({', '.join(PACKAGED)}) nor an existing CTranslate2 Whisper directory")
        for code, language in self.languages.items():
            english_only = language.engine == "pocketsphinx" or language.model.endswith(".en")
            if english_only and not code.lower().startswith("en"):
                raise ValueError(f"languages.{code}: {language.engine} {language.model} only recognizes English")


@dataclass(frozen=True)
class GatewayConfig:
    host: str = field(default="127.0.0.1", metadata={"help": "bind address; a non-loopback address needs a key"})
    port: int = field(default=5318, metadata={"min": 0, "max": 65535, "help": "0: any free port"})
    subscription_key: str | None = field(default=None, metadata={"secret": True, "help": "required from clients when set"})
    subscription_key_file: str | None = field(default=None, metadata={"help": "file holding the key (wins over the inline key)"})
    voices: dict[str, str] = field(
        default_factory=lambda: {"es": "es", "ca": "ca", "en": "en-us"},
        metadata={"help": "target language -> espeak-ng voice"})
    recognition: RecognitionConfig = field(default_factory=RecognitionConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    engine_threads: int = field(default=4, metadata={"min": 1, "max": 64, "help": "worker threads for the engines"})

    def __post_init__(self) -> None:
        if not _is_loopback(self.host) and not (self.subscription_key or self.subscription_key_file):
            raise ValueError(f"host {self.host!r} is not loopback: set subscription_key or subscription_key_file")

    @property
    def source_language(self) -> str:
        """The source language of clients that do not name one."""
        return next(iter(self.recognition.languages))

    def resolved_key(self) -> str | None:
        if self.subscription_key_file:
            with open(self.subscription_key_file) as fh:
                return fh.read().strip()
        return self.subscription_key


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
