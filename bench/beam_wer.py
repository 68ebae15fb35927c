"""Greedy vs beam search for finals, per source language, as the gateway decodes them.

Each phrase goes through the gateway's own recognizer (``WhisperRecognizer``, one 1-thread worker,
``finish()`` as a session's final) once per beam size, side by side in one run. Sets:

- Spanish: espeak-ng ``es`` sentences (the conversation demo's among them), Whisper base — the
  ``es-ES`` default model;
- English: the shared ARCTIC recordings (espeak-ng sentences without them) plus espeak-ng
  sentences, Whisper tiny.en — the ``en-US`` default, pooled as in bench/asr.py.

Reported per language and beam size: WER (edits capped at the reference length, numbers spelled
out as in bench/asr.py), the median end -> final latency (``finish()`` on the whole phrase) and the
worker's CPU seconds per audio second. Partials stay greedy whatever the beam (``transcribe_prefix``).

    python bench/beam_wer.py            # 12 Spanish + 17 English phrases, beams 1 and 5: ~4 min
    python bench/beam_wer.py --quick    # 4 + 4 phrases
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from agent.audio.synth import speak  # noqa: E402
from array_wer import spell_numbers  # noqa: E402
from asr import ESPEAK_SENTENCES  # noqa: E402
from gateway.engines.whisper_asr import DecodeOptions, WhisperRecognizer  # noqa: E402
from gateway.engines.whisper_models import resolve_model  # noqa: E402
from tests.support.data import shared_data_dir  # noqa: E402
from parley_common.wer import edit_distance, word_errors  # noqa: E402
from tests.support.speech import english_samples  # noqa: E402

SPANISH_SENTENCES = (
    "Buenos días. La estación está muy cerca.", "De nada. Buen viaje.", "¿Dónde está la sala de conferencias?",
    "Bienvenidos a todos.", "La reunión empieza a las nueve.", "¿Puede hablar un poco más despacio?",
    "Muchas gracias por venir hoy.", "El tren sale del andén dos.", "Quisiera una taza de café.",
    "Nuestro próximo invitado viene de Barcelona.", "Por favor, apaguen sus teléfonos.",
    "La comida se sirve en la sala principal.")
SPANISH_NUMBERS = {"2": "dos", "9": "nueve", "9:00": "nueve"}


def spanish_numbers(text: str) -> str:
    return " ".join(SPANISH_NUMBERS.get(w.strip(".,?!¿¡"), w) for w in text.lower().split())


def spanish_words(text: str) -> list[str]:
    """Lower case, punctuation gone, accents kept (they are spelling, not formatting)."""
    return "".join(c if c.isalnum() or c.isspace() else " " for c in text.lower()).split()


def spanish_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    ref = spanish_words(reference)
    return edit_distance(ref, spanish_words(spanish_numbers(hypothesis))), len(ref)


def english_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    return word_errors(reference, spell_numbers(hypothesis))


def measure(recognizer, worker, model: str, language: str, beam: int, phrases, errors_of) -> dict:
    options = DecodeOptions(str(resolve_model(model)), language, beam)
    errors = words = 0
    latencies, hypotheses = [], []
    audio_s = 0.0
    cpu0 = worker.cpu_times()
    for text, pcm in phrases:
        stream = recognizer.open_stream(options)
        stream.feed(pcm.astype("<i2").tobytes())
        t0 = time.perf_counter()
        hypothesis = stream.finish()
        latencies.append(time.perf_counter() - t0)
        stream.close()
        e, n = errors_of(text, hypothesis)
        errors, words = errors + min(e, n), words + n
        hypotheses.append(hypothesis)
        audio_s += len(pcm) / 16000
    cpu1 = worker.cpu_times()
    cpu_s = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    return {"model": model, "beam_size": beam, "wer": errors / words, "words": words,
            "end_to_final_median_s": float(np.median(latencies)), "cpu_rtf": cpu_s / audio_s, "hypotheses": hypotheses}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--beams", default="1,5")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "beam_wer.json")
    args = parser.parse_args()
    n = 4 if args.quick else None
    spanish = [(s, speak(s, voice="es")) for s in SPANISH_SENTENCES[:n]]
    english = english_samples(shared_data_dir(), limit=n or 100) + [(s, speak(s)) for s in ESPEAK_SENTENCES[:n]]
    sets = {"es": ("base", spanish, spanish_errors), "en": ("tiny.en", english, english_errors)}
    recognizer = WhisperRecognizer(processes=1)
    results: dict[str, list[dict]] = {}
    try:
        recognizer.warm_up([str(resolve_model(model)) for model, _, _ in sets.values()])
        worker = psutil.Process(recognizer.worker_pids[0])
        for language, (model, phrases, errors_of) in sets.items():
            for beam in (int(b) for b in args.beams.split(",")):
                row = measure(recognizer, worker, model, language, beam, phrases, errors_of)
                results.setdefault(language, []).append(row)
                print(f"{language} {model:>8} beam {beam}: WER {row['wer']:.3f} ({row['words']} words), "
                      f"end->final median {row['end_to_final_median_s']:.2f} s, CPU RTF {row['cpu_rtf']:.2f}", flush=True)
    finally:
        recognizer.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"when": datetime.now(timezone.utc).isoformat(), "quick": args.quick,
                                    "languages": results}, indent=1, ensure_ascii=False))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
