"""Uplink configuration: which service, which languages, how to reconnect, how much to keep."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from parley_common.protocols.usp import USP_V2_PATH

URL_SCHEMES = ("ws", "wss")


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a service URL, or None. Checked at load time: a bad URL fails every
    connect the same way, so retrying it only fills the journal."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a non-numeric or out-of-range port
    except ValueError as exc:
        return f"{url!r} is not a valid URL ({exc}); allowed: ws://HOST[:PORT][/PATH] or wss://..."
    if parts.scheme not in URL_SCHEMES:
        scheme = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        return f"{url!r} has {scheme}; allowed: ws://HOST[:PORT][/PATH] or wss://..."
    if not parts.hostname:
        return f"{url!r} has no host; allowed: ws://HOST[:PORT][/PATH] or wss://..."
    return None

from agent.uplink.azure_endpoints import endpoint_url, is_v2  # noqa: E402
from agent.uplink.azure_endpoints import token_url as derived_token_url  # noqa: E402


@dataclass(frozen=True)
class ReconnectConfig:
    initial_backoff_ms: int = field(default=250, metadata={"min": 10, "help": "first retry after a drop"})
    max_backoff_ms: int = field(default=10000, metadata={"min": 100, "help": "retry interval cap (jittered)"})
    auth_backoff_ms: int = field(default=60000, metadata={"min": 1000, "help": "retry interval after 401/403 or a fatal close"})
    ping_interval_s: float = field(default=2.0, metadata={"min": 0.2, "help": "keepalive ping interval"})
    ping_timeout_s: float = field(default=4.0, metadata={"min": 0.5, "help": "silence after a ping that means half-open"})
    max_connection_s: float = field(
        default=540.0, metadata={"min": 10.0, "help": "reconnect between utterances before a service's connection cap"})
    connect_timeout_s: float = field(default=5.0, metadata={"min": 0.5})


@dataclass(frozen=True)
class UplinkConfig:
    backend: Literal["gateway", "translator-v1", "azure"] = field(
        default="gateway", metadata={"help": "gateway/translator-v1: Translator Speech v1 protocol; azure: Speech USP"})
    url: str | None = field(
        default=None, metadata={"help": "service URL; gateway default ws://127.0.0.1:5318; azure: an endpoint overrides region"})
    urls: tuple[str, ...] = field(
        default=(), metadata={"help": "several addresses of the same service (gateways without a balancer), "
                                      "instead of url: after a failed connect or a drop the next is tried"})
    url_order: Literal["ordered", "random"] = field(
        default="ordered", metadata={"help": "urls: next in list order, or a random other one (spreads rooms)"})
    region: str | None = field(
        default=None, metadata={"help": "azure region, e.g. westeurope; china*/usgov* regions use their sovereign cloud"})
    endpoint_version: Literal["v1", "v2"] = field(
        default="v1", metadata={"help": "azure with region: v1 REGION.s2s.speech… (languages in the query) or "
                                        "v2 REGION.stt.speech…/stt/speech/universal/v2 (what SDK >= 1.43 uses)"})
    token_url: str | None = field(
        default=None, metadata={"help": "azure token exchange URL (default: the region's, or the custom domain's of url)"})
    use_token: bool = field(
        default=False, metadata={"help": "exchange the key for a 10-minute bearer token; the key is the fallback"})
    key_file: str | None = field(default=None, metadata={"help": "file holding the subscription key"})
    key_env: str | None = field(default=None, metadata={"help": "environment variable holding the key"})
    key_credential: str = field(
        default="parley-key", metadata={"help": "systemd credential name ($CREDENTIALS_DIRECTORY/NAME)"})
    from_language: str = "en-US"
    to_languages: tuple[str, ...] = ("es", "ca")
    voice: str | None = field(default=None, metadata={"help": "voice for speech output (default: the service's for the first target)"})
    identify_languages: tuple[str, ...] = field(
        default=(), metadata={"help": "speech may be in any of these (BCP-47): the service identifies each utterance's "
                                      "language and from_language is unused; needs USP v2 (the gateway, or azure v2)"})
    voices: dict[str, str] = field(
        default_factory=dict, metadata={"help": "with identify_languages: target language -> voice; each target but "
                                                "the talker's own is spoken (default: the service's per language)"})
    partial_results: bool = True
    speech_output: bool = field(default=True, metadata={"help": "ask for synthesized speech of the translation"})
    silence_tail_ms: int = field(
        default=1000, metadata={"min": 100, "max": 10000, "help": "v1: silence sent after an utterance so the service ends it"})
    final_timeout_s: float = field(
        default=15.0, metadata={"min": 1.0, "help": "an utterance with no final this long after its end is given up"})
    outbox_max_audio_s: float = field(
        default=120.0, metadata={"min": 5.0, "help": "speech kept while offline (in memory and in the spool, "
                                 "32 kB per second); the oldest is dropped beyond this"})
    spool_dir: str | None = field(
        default=None, metadata={"help": "keep speech owed a result here (fsynced) and send it after a restart "
                                "or power cut; null: $STATE_DIRECTORY/spool under systemd, else memory only"})
    inbound_queue_events: int = field(default=4000, metadata={"min": 100, "help": "front end -> uplink queue size"})
    reconnect: ReconnectConfig = field(default_factory=ReconnectConfig)

    def __post_init__(self) -> None:
        if self.urls:
            if self.url is not None and self.url != self.urls[0]:
                raise ValueError("set url (one address) or urls (several), not both")
            paths = {urlsplit(u).path.rstrip("/") for u in self.urls}
            if len(paths) > 1:
                raise ValueError(f"urls must be addresses of one service, differing only in host and port; "
                                 f"their paths differ: {', '.join(sorted(paths))}")
            object.__setattr__(self, "url", self.urls[0])  # the protocol builds its URL from the first
        if not self.to_languages:
            raise ValueError("to_languages needs at least one language")
        if self.backend == "translator-v1" and not self.url:
            raise ValueError("backend translator-v1 needs url")
        problem = self.language_identification_problem() if self.identify_languages else None
        if problem:
            raise ValueError(f"identify_languages needs the Speech USP v2 protocol: {problem}")
        if self.backend == "azure" and not (self.url or self.region):
            raise ValueError("backend azure needs region or url")
        if self.backend == "azure" and self.use_token and not (self.token_url or derived_token_url(self.region, self.url)):
            raise ValueError(f"use_token needs token_url or region: no token host can be derived from url {self.url!r} "
                             "(only NAME.cognitiveservices.azure.com/.cn/.us and REGION.*.speech.* hosts name one)")

    def language_identification_problem(self) -> str | None:
        """Why this service cannot identify each utterance's language (USP v2 ``languageId``), or None."""
        if self.backend == "translator-v1":
            return ("backend gateway or azure, not translator-v1 (Translator Speech v1 fixes one source "
                    "language per connection)")
        if self.backend == "azure" and not (is_v2(endpoint_url(self.url, USP_V2_PATH)) if self.url
                                            else self.endpoint_version == "v2"):
            return ("Azure does that on the v2 endpoint only; allowed: endpoint_version: v2, "
                    "or a url ending in /stt/speech/universal/v2")
        return None
