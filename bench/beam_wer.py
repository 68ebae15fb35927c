"""Decoding settings for finals, per source language, as the gateway decodes them.

Each phrase goes through the gateway's own recognizer (``WhisperRecognizer``, one 1-thread worker)
once per variant, side by side in one run, along one of two paths:

- ``direct``: the bare phrase straight into ``finish()`` (what this bench measured before);
- ``gateway``: the phrase between 1 s and 1.5 s of silence through the gateway's own endpointing
  (``PhraseDetector``: VAD, 300 ms pre-roll, the 600 ms hangover), its finals joined — what a
  session's final hears. Partials are held off so that only finals are timed.

Sets: Spanish, 24 espeak-ng ``es`` sentences (the conversation demo's among them), Whisper base —
the ``es-ES`` default model; English, the shared ARCTIC recordings (espeak-ng sentences without
them) plus espeak-ng sentences, Whisper tiny.en — the ``en-US`` default, pooled as in bench/asr.py.

Reported per language and variant: WER (edits capped at the reference length; Spanish with the
normaliser below, strict and accent-blind), the median end -> final latency (the call that returns
the final) and the worker's CPU seconds per final and per audio second.

    python bench/beam_wer.py            # 24 Spanish + 17 English phrases: ~10 min
    python bench/beam_wer.py --quick    # 6 + 4 phrases
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import unicodedata
import numpy as np
import psutil
from num2words import num2words

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from agent.audio.synth import speak  # noqa: E402
from array_wer import spell_numbers  # noqa: E402
from asr import ESPEAK_SENTENCES  # noqa: E402
from gateway.config import RecognitionConfig  # noqa: E402
from gateway.engines.whisper_asr import DecodeOptions, WhisperRecognizer  # noqa: E402
from gateway.phrases import PhraseDetector, PhraseFinal  # noqa: E402
from gateway.engines.whisper_models import resolve_model  # noqa: E402
from tests.support.data import shared_data_dir  # noqa: E402
from parley_common.wer import edit_distance, word_errors  # noqa: E402
from tests.support.speech import english_samples  # noqa: E402

SPANISH_SENTENCES = (
    "Buenos días. La estación está muy cerca.", "De nada. Buen viaje.", "¿Dónde está la sala de conferencias?",
    "Bienvenidos a todos.", "La reunión empieza a las nueve.", "¿Puede hablar un poco más despacio?",
    "Muchas gracias por venir hoy.", "El tren sale del andén dos.", "Quisiera una taza de café.",
    "Nuestro próximo invitado viene de Barcelona.", "Por favor, apaguen sus teléfonos.",
    "La comida se sirve en la sala principal.",
    "Hoy hace mucho calor en la ciudad.", "Mi hermana trabaja en un hospital.", "¿A qué hora cierra la tienda?",
    "Necesito un billete de ida y vuelta.", "El museo está abierto todos los días.",
    "Me gustaría reservar una mesa para cuatro.", "La próxima parada es la plaza mayor.",
    "Gracias por su atención.", "¿Cuánto cuesta esta habitación?", "Los niños juegan en el parque.",
    "Vamos a empezar la presentación ahora.", "El vuelo llega con media hora de retraso.")
NUMBER = re.compile(r"\d+(?::\d\d)?")
SILENCE_BEFORE_S, SILENCE_AFTER_S = 1.0, 1.5
CHUNK_SAMPLES = 1600  # 100 ms per feed, as a client sends


def _spelled(match: re.Match) -> str:
    """9 -> nueve, 9:00 -> nueve, 9:30 -> nueve y treinta."""
    hours, _, minutes = match.group(0).partition(":")
    spoken = num2words(int(hours), lang="es")
    return spoken + (f" y {num2words(int(minutes), lang='es')}" if minutes and int(minutes) else "")


def spanish_words(text: str, accents: bool = True) -> list[str]:
    """How a Spanish reader compares two texts: case, punctuation (¿¡ too) and digits vs words do not
    count; accents do (``está``/``esta`` is a spelling error) unless ``accents`` is False."""
    text = NUMBER.sub(_spelled, text.lower())
    if not accents:
        text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    return "".join(c if c.isalnum() or c.isspace() else " " for c in text).split()


def spanish_errors(reference: str, hypothesis: str, accents: bool = True) -> tuple[int, int]:
    ref = spanish_words(reference, accents)
    return edit_distance(ref, spanish_words(hypothesis, accents)), len(ref)


def english_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    return word_errors(reference, spell_numbers(hypothesis))


def decode_direct(recognizer, options: DecodeOptions, pcm: np.ndarray) -> tuple[str, float]:
    stream = recognizer.open_stream(options)
    stream.feed(pcm.astype("<i2").tobytes())
    t0 = time.perf_counter()
    hypothesis = stream.finish()
    latency = time.perf_counter() - t0
    stream.close()
    return hypothesis, latency


def decode_gateway(recognizer, options: DecodeOptions, pcm: np.ndarray) -> tuple[str, float]:
    """The phrase in silence through the gateway's endpointing; the latency is that of the feed that
    returned the last final (its decode, after the hangover)."""
    config = RecognitionConfig(partial_interval_ms=10**9)
    detector = PhraseDetector(lambda: recognizer.open_stream(options), config)
    audio = np.concatenate([np.zeros(int(SILENCE_BEFORE_S * 16000), np.int16), pcm,
                            np.zeros(int(SILENCE_AFTER_S * 16000), np.int16)]).astype("<i2")
    texts, latency = [], 0.0
    for offset in range(0, audio.size, CHUNK_SAMPLES):
        t0 = time.perf_counter()
        finals = [e for e in detector.feed(audio[offset:offset + CHUNK_SAMPLES].tobytes()) if isinstance(e, PhraseFinal)]
        if finals:
            latency = time.perf_counter() - t0
        texts += [e.text for e in finals]
    texts += [e.text for e in detector.flush() if isinstance(e, PhraseFinal)]
    detector.close()
    return " ".join(t for t in texts if t), latency


def measure(recognizer, worker, options: DecodeOptions, path: str, phrases, errors_of) -> dict:
    decode = decode_gateway if path == "gateway" else decode_direct
    errors = words = 0
    latencies, hypotheses = [], []
    audio_s = 0.0
    cpu0 = worker.cpu_times()
    for text, pcm in phrases:
        hypothesis, latency = decode(recognizer, options, pcm)
        latencies.append(latency)
        e, n = errors_of(text, hypothesis)
        errors, words = errors + min(e, n), words + n
        hypotheses.append(hypothesis)
        audio_s += len(pcm) / 16000
    cpu1 = worker.cpu_times()
    cpu_s = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    return {"path": path, "beam_size": options.beam_size,
            "wer": errors / words, "words": words, "end_to_final_median_s": float(np.median(latencies)),
            "cpu_s_per_final": cpu_s / len(phrases), "cpu_rtf": cpu_s / audio_s, "hypotheses": hypotheses}


# (path, beam) side by side; the last of each language is the shipped default. Silence put before a
# final (500 ms) was measured too: Spanish beam 5 0.380 -> 0.310 direct but 0.352 -> 0.359 through
# the gateway, English 0.081 -> 0.097 (results/beam_wer_lead_silence.json): the pre-roll already does it.
VARIANTS = {"es": [("direct", 1), ("direct", 5), ("gateway", 1), ("gateway", 5)],
            "en": [("direct", 1), ("direct", 5), ("gateway", 1), ("gateway", 5)]}


def wer_of(phrases, hypotheses, accents: bool) -> float:
    counts = [spanish_errors(text, h, accents) for (text, _), h in zip(phrases, hypotheses)]
    return sum(min(e, n) for e, n in counts) / sum(n for _, n in counts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "beam_wer.json")
    parser.add_argument("--languages", default="es,en", help="which sets to run (es, en)")
    args = parser.parse_args()
    languages = args.languages.split(",")
    if not set(languages) <= set(VARIANTS):
        parser.error(f"--languages {args.languages}: allowed {', '.join(VARIANTS)}")
    n = 4 if args.quick else None
    sets = {}  # only the sets asked for are synthesised and their models loaded
    if "es" in languages:
        spanish = [(s, speak(s, voice="es")) for s in SPANISH_SENTENCES[:6 if args.quick else None]]
        sets["es"] = ("base", spanish, spanish_errors)
    if "en" in languages:
        english = english_samples(shared_data_dir(), limit=n or 100) + [(s, speak(s)) for s in ESPEAK_SENTENCES[:n]]
        sets["en"] = ("tiny.en", english, english_errors)
    recognizer = WhisperRecognizer(processes=1)
    results: dict[str, list[dict]] = {}
    try:
        recognizer.warm_up([str(resolve_model(model)) for model, _, _ in sets.values()])
        worker = psutil.Process(recognizer.worker_pids[0])
        for language, (model, phrases, errors_of) in sets.items():
            for path, beam in VARIANTS[language]:
                options = DecodeOptions(str(resolve_model(model)), language, beam)
                row = measure(recognizer, worker, options, path, phrases, errors_of)
                row["model"] = model
                if language == "es":
                    row["wer_accent_blind"] = wer_of(phrases, row["hypotheses"], accents=False)
                results.setdefault(language, []).append(row)
                blind = f" (accent-blind {row['wer_accent_blind']:.3f})" if language == "es" else ""
                print(f"{language} {model:>8} {path:>7} beam {beam}: WER {row['wer']:.3f}{blind} "
                      f"({row['words']} words), end->final median {row['end_to_final_median_s']:.2f} s, "
                      f"CPU {row['cpu_s_per_final']:.2f} s/final (RTF {row['cpu_rtf']:.2f})", flush=True)
    finally:
        recognizer.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"when": datetime.now(timezone.utc).isoformat(), "quick": args.quick,
                                    "languages": results}, indent=1, ensure_ascii=False))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
