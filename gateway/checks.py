"""``parley-gateway --check-config``: what ``parley-gateway`` would fail on at start, found beforehand.

The file itself is checked by the typed loader (file:line); this adds what the file points at on this
machine: the engines' Python packages and programs, the Whisper weights and the model cache, the
endpointing VAD's model, the key file. Apertium pairs are not required (a source without targets still recognizes)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from gateway.config import GatewayConfig
from gateway.engines.whisper_models import ModelError, check_model
from parley_common.vad.engines import VadUnavailable, make_vad

ENGINE_MODULES = {"whisper": "faster_whisper", "pocketsphinx": "pocketsphinx"}


def environment_problems(config: GatewayConfig) -> list[str]:
    problems = []
    recognition = config.recognition
    cache_dir = Path(recognition.model_cache_dir).expanduser() if recognition.model_cache_dir else None
    models = {lang.model for lang in recognition.languages.values() if lang.engine == "whisper"}
    if models:
        models.add(recognition.language_id_model)
    for code, language in recognition.languages.items():
        module = ENGINE_MODULES[language.engine]
        if importlib.util.find_spec(module) is None:
            problems.append(f"recognition.languages.{code}: engine {language.engine} needs the Python package "
                            f"{module}: install parley[gateway]")
    for model in sorted(models):
        try:
            check_model(model, cache_dir)
        except ModelError as exc:
            problems.append(f"recognition model {model}: {exc}")
    try:
        make_vad(recognition.vad, 16000)  # server-side endpointing; silero needs the silero-vad wheel's model
    except VadUnavailable as exc:
        problems.append(f"recognition.vad: {exc}")
    if importlib.util.find_spec("websockets") is None:
        problems.append("the server needs the Python package websockets: install parley[gateway]")
    for program, package in (("espeak-ng", "espeak-ng"), ("lt-proc", "apertium")):
        if shutil.which(program) is None:
            problems.append(f"{program} is not installed (Debian package {package})")
    if config.subscription_key_file:
        try:
            config.resolved_key()
        except OSError as exc:
            problems.append(f"subscription_key_file {config.subscription_key_file}: {exc.strerror or exc}")
    return problems
