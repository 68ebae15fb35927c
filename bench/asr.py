"""Recognition benchmark: pocketsphinx vs Whisper tiny.en vs Whisper base, side by side in one run.

    python bench/asr.py            # 7 ARCTIC + 10 espeak + 7 noisy files per engine, ~5 minutes on 2 cores
    python bench/asr.py --quick    # 2 files per set

Each engine decodes through the gateway's own recognizer (one worker process, one thread) exactly
as a session does: feed the phrase, ``finish()``. Reported per engine: WER per set (clean ARCTIC
recordings, espeak-ng sentences, ARCTIC with dish noise at 10 dB) and pooled, normalised for case,
punctuation and numbers written as digits; the worker's CPU seconds and the wall seconds per audio second (RTF); the
cost of one partial (``hypothesis()`` on a 2 s prefix); end of audio -> final (``finish()`` on a
whole phrase); and how many 3 s noise-only clips came back with words.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import wave
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

from agent.audio.synth import speak  # noqa: E402
from gateway.engines.pocketsphinx_asr import PocketsphinxRecognizer  # noqa: E402
from gateway.engines.whisper_asr import DecodeOptions, WhisperRecognizer  # noqa: E402
from gateway.engines.whisper_models import resolve_model  # noqa: E402
from tests.support.speech import english_samples, word_errors  # noqa: E402

ESPEAK_SENTENCES = (
    "Where is the conference room?", "Please welcome our guests.", "The meeting starts at nine o'clock.",
    "Could you speak a little more slowly?", "Thank you all for coming today.", "The train leaves from platform two.",
    "I would like a cup of coffee.", "Our next speaker is from Barcelona.", "Please turn off your phones.",
    "Lunch will be served in the main hall.")
NUMBERS = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven",
           "8": "eight", "9": "nine", "10": "ten", "20th": "twentieth", "9:00": "nine o'clock"}
NOISY_SNR_DB = 10.0


def spell_numbers(text: str) -> str:
    """Whisper writes "20th" and "9:00" where the references spell them out."""
    return " ".join(NUMBERS.get(word.strip(".,?!"), word) for word in text.lower().split())


def load_noise(shared: Path | None) -> np.ndarray:
    path = shared / "noise" / "doing_the_dishes.wav" if shared else None
    if path and path.is_file():
        with wave.open(str(path)) as wav:
            return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64)
    return np.random.default_rng(0).normal(0, 3000, 60 * 16000)


def mix(speech: np.ndarray, noise: np.ndarray, snr_db: float, offset: int) -> np.ndarray:
    part = np.resize(noise[offset:], speech.size)
    gain = np.sqrt(np.mean(speech.astype(np.float64) ** 2) / (np.mean(part ** 2) * 10 ** (snr_db / 10)))
    return np.clip(speech + gain * part, -32768, 32767).astype(np.int16)


class Engine:
    """One recognizer with one worker process, measured from outside."""

    def __init__(self, name: str, recognizer, open_stream):
        self.name = name
        self.recognizer = recognizer
        self.open_stream = open_stream
        self.process = psutil.Process(recognizer.worker_pids[0])

    def cpu_s(self) -> float:
        times = self.process.cpu_times()
        return times.user + times.system

    def decode(self, pcm: np.ndarray) -> tuple[str, float]:
        """(text, seconds from the last audio to the final)."""
        stream = self.open_stream()
        for i in range(0, len(pcm), 1600):
            stream.feed(pcm[i:i + 1600].tobytes())
        t0 = time.perf_counter()
        text = stream.finish()
        end_to_final = time.perf_counter() - t0
        stream.close()
        return text, end_to_final

    def partial_s(self, pcm: np.ndarray) -> float:
        stream = self.open_stream()
        stream.feed(pcm[:32000].tobytes())
        t0 = time.perf_counter()
        stream.hypothesis()
        elapsed = time.perf_counter() - t0
        stream.finish()
        stream.close()
        return elapsed


def make_engines() -> list[Engine]:
    ps = PocketsphinxRecognizer(processes=1)
    ps.warm_up(1)
    engines = [Engine("pocketsphinx", ps, ps.open_stream)]
    for model in ("tiny.en", "base"):
        whisper = WhisperRecognizer(processes=1)
        options = DecodeOptions(str(resolve_model(model)), "en")
        whisper.warm_up([options.model_path])
        engines.append(Engine(f"whisper {model}", whisper, lambda w=whisper, o=options: w.open_stream(o)))
    return engines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "asr.json")
    args = parser.parse_args()
    shared = args.shared_data if args.shared_data.is_dir() else None
    limit = 2 if args.quick else 10
    clean = english_samples(shared, limit=7)[:limit]
    noise = load_noise(shared)
    sets = {
        "clean": clean,
        "espeak": [(s, speak(s)) for s in ESPEAK_SENTENCES[:limit]],
        "noisy": [(text, mix(pcm, noise, NOISY_SNR_DB, 16000 * i)) for i, (text, pcm) in enumerate(clean)],
    }
    noise_clips = [noise[i * 48000:(i + 1) * 48000].astype(np.int16) for i in range(2 if args.quick else 8)]
    report: dict = {"when": datetime.now(timezone.utc).isoformat(), "quick": args.quick, "engines": {}}
    engines = make_engines()
    try:
        for engine in engines:
            row: dict = {"wer": {}, "hypotheses": {}}
            errors = words = 0
            audio_s = wall_s = 0.0
            finals = []
            cpu0 = engine.cpu_s()
            for set_name, samples in sets.items():
                e_set = n_set = 0
                row["hypotheses"][set_name] = []
                for reference, pcm in samples:
                    t0 = time.perf_counter()
                    text, end_to_final = engine.decode(pcm)
                    wall_s += time.perf_counter() - t0
                    audio_s += len(pcm) / 16000
                    finals.append(end_to_final)
                    e, n = word_errors(reference, spell_numbers(text))
                    e_set, n_set = e_set + e, n_set + n
                    row["hypotheses"][set_name].append(text)
                row["wer"][set_name] = e_set / n_set
                errors, words = errors + e_set, words + n_set
            row["wer"]["pooled"] = errors / words
            row["cpu_rtf"] = (engine.cpu_s() - cpu0) / audio_s
            row["wall_rtf"] = wall_s / audio_s
            row["end_to_final_median_s"] = float(np.median(finals))
            row["partial_2s_median_s"] = float(np.median([engine.partial_s(pcm) for _, pcm in clean]))
            row["noise_clips_with_words"] = sum(bool(engine.decode(clip)[0]) for clip in noise_clips)
            row["noise_clips"] = len(noise_clips)
            report["engines"][engine.name] = row
    finally:
        for engine in engines:
            engine.recognizer.close()
    print("engine          WER clean / espeak / noisy  pooled  CPU RTF  wall RTF  partial (2 s)  end->final  noise clips with words")
    for name, row in report["engines"].items():
        w = row["wer"]
        print(f"{name:<15} {w['clean']:.2f} / {w['espeak']:.2f} / {w['noisy']:.2f}        {w['pooled']:.2f}    "
              f"{row['cpu_rtf']:.3f}    {row['wall_rtf']:.3f}     {row['partial_2s_median_s']:.2f} s         "
              f"{row['end_to_final_median_s']:.2f} s      {row['noise_clips_with_words']}/{row['noise_clips']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
