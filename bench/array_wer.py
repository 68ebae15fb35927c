"""WER through the array: the number the front end exists for.

Simulated rooms (``agent.simulation.simulate_scene``: 5 x 4 x 2.8 m, ReSpeaker 4-mic hat, talker
1.5 m away at a random azimuth) with ARCTIC recordings (or espeak sentences without the shared
data) said one after another with 1.5 s gaps, quasi-diffuse or point-interferer real noise at
10 / 5 / 0 dB. Each scene goes through the real front end (``FrontEnd``: DOA, beamformer, AGC) once
with the DAS and once with the MVDR beamformer; its mono output, put back on the input's timeline
(the output frames carry their true sample index), is compared with raw mic 0.

Recognition: Whisper tiny.en through the gateway's own recognizer (language en, default decode
options), each utterance decoded on its own with the scene's known boundaries: the utterance's
[start - 0.2 s, end + 0.5 s) of the signal (the tail keeps the reverberation), the same window for
mic 0, DAS and MVDR. So this measures what the beamformer does to recognition, not the segmenter.
The same sentences in every condition (only the talker's azimuth and the noise change). WER is
pooled over a condition's utterances (edit distance / reference words, normalised like
bench/asr.py); the "mean" row averages the conditions.

    python bench/array_wer.py --quick    # RT60 0.3 s, diffuse + point, 10 and 0 dB, 2 utterances per cell
    python bench/array_wer.py            # RT60 0.3 and 0.6 s, 10 / 5 / 0 dB, 5 utterances per cell
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

from parley_common.frames import Frame  # noqa: E402
from agent.dsp.beamformer import BeamformerConfig  # noqa: E402
from agent.frontend import FrontEnd, FrontendConfig  # noqa: E402
from agent.hardware import load_array_profile  # noqa: E402
from agent.simulation import simulate_scene  # noqa: E402
from gateway.engines.whisper_asr import DecodeOptions, WhisperRecognizer  # noqa: E402
from gateway.engines.whisper_models import resolve_model  # noqa: E402
from tests.support.speech import english_samples, word_errors  # noqa: E402

RATE = 16000
FRAME = 320
PROFILE = "respeaker-4mic-hat"
BEFORE_S, AFTER_S = 0.2, 0.5
VARIANTS = ("mic0", "das", "mvdr")
NUMBERS = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven",
           "8": "eight", "9": "nine", "10": "ten", "20th": "twentieth", "9:00": "nine o'clock"}


def spell_numbers(text: str) -> str:
    """Whisper writes "20th" and "9:00" where the references spell them out (as in bench/asr.py)."""
    return " ".join(NUMBERS.get(word.strip(".,?!"), word) for word in text.lower().split())


def front_end_output(scene, geometry, kind: str) -> np.ndarray:
    """The front end's mono output (beamformed, levelled) on the input's timeline."""
    frontend = FrontEnd(replace(FrontendConfig(), beamformer=BeamformerConfig(type=kind)), geometry)
    mixture = scene.mixture
    pad = (-len(mixture)) % FRAME
    mixture = np.concatenate([mixture, np.zeros((pad, mixture.shape[1]), mixture.dtype)])
    out = np.zeros(len(mixture), np.int16)
    for i in range(0, len(mixture), FRAME):
        frontend.process(Frame(mixture[i:i + FRAME], i, RATE))
        frame = frontend.last_output
        a, b = frame.start_sample, frame.start_sample + frame.n_samples
        samples = frame.samples[:, 0]
        if a < 0:
            samples, a = samples[-a:], 0
        out[a:b] = samples[: len(out) - a]
    frontend.flush()
    return out[: len(scene.mixture)]


def make_cell(job):
    """One condition in a worker process: the scene, and per utterance the mic-0 / DAS / MVDR windows."""
    index, (rt60, noise, snr), n_utterances, shared = job
    samples = english_samples(shared, limit=100)
    chosen = np.random.default_rng(7).choice(len(samples), size=min(n_utterances, len(samples)), replace=False)
    rng = np.random.default_rng(100 + index)  # the same sentences in every condition, the talker's azimuth varies
    texts = [samples[i][0] for i in chosen]
    geometry = load_array_profile(PROFILE)
    azimuth = float(rng.uniform(0, 360))
    t0 = time.perf_counter()
    scene = simulate_scene(geometry, [samples[i][1].astype(float) for i in chosen], azimuth, distance_m=1.5,
                           rt60_s=rt60, noise=noise, snr_db=snr, seed=100 + index,
                           noise_dir=shared / "noise" if shared else None, gap_s=1.5)
    signals = {"mic0": scene.mixture[:, 0].copy()}
    for kind in ("das", "mvdr"):
        signals[kind] = front_end_output(scene, geometry, kind)
    clips = []
    for text, (start, end) in zip(texts, scene.utterances):
        a, b = max(0, start - int(BEFORE_S * RATE)), min(len(scene.mixture), end + int(AFTER_S * RATE))
        clips.append((text, {name: signal[a:b].copy() for name, signal in signals.items()}))
    return dict(rt60_s=rt60, noise=noise, snr_db=snr, azimuth_deg=azimuth, sim_s=time.perf_counter() - t0), clips


def decode(recognizer, options, pcm: np.ndarray) -> str:
    stream = recognizer.open_stream(options)
    try:
        for i in range(0, len(pcm), 1600):
            stream.feed(pcm[i:i + 1600].astype("<i2").tobytes())
        return stream.finish()
    finally:
        stream.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--utterances", type=int, default=None, help="per condition (default 2 quick, 5 full)")
    parser.add_argument("--jobs", type=int, default=2, help="scenes simulated in parallel, one process each")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "array_wer.json")
    args = parser.parse_args()
    started = time.perf_counter()
    shared = args.shared_data if args.shared_data.is_dir() else None
    rt60s, snrs = ((0.3,), (10.0, 0.0)) if args.quick else ((0.3, 0.6), (10.0, 5.0, 0.0))
    n_utterances = args.utterances or (2 if args.quick else 5)
    grid = [(rt, noise, snr) for rt in rt60s for noise in ("diffuse", "point") for snr in snrs]
    jobs = [(index, cell, n_utterances, shared) for index, cell in enumerate(grid)]

    recognizer = WhisperRecognizer(processes=1)
    options = DecodeOptions(str(resolve_model(args.model)), "en")
    recognizer.warm_up([options.model_path])
    cells = []
    header = f"{'RT60 s':>6} {'noise':>8} {'SNR dB':>6} | {'mic0':>5} {'DAS':>5} {'MVDR':>5} | {'MVDR/mic0':>9}"
    print(header)
    try:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for cell, clips in pool.map(make_cell, jobs):
                errors = dict.fromkeys(VARIANTS, 0)
                words = 0
                cell["utterances"] = []
                for text, signals in clips:
                    row = {"reference": text}
                    for name in VARIANTS:
                        hypothesis = decode(recognizer, options, signals[name])
                        e, n = word_errors(text, spell_numbers(hypothesis))
                        errors[name] += e
                        row[name] = hypothesis
                    words += n
                    cell["utterances"].append(row)
                cell["words"] = words
                cell["wer"] = {name: errors[name] / words for name in VARIANTS}
                cell["mvdr_over_mic0"] = cell["wer"]["mvdr"] / cell["wer"]["mic0"] if cell["wer"]["mic0"] else None
                cells.append(cell)
                print(table_row(cell), flush=True)
    finally:
        recognizer.close()
    pooled = {name: float(np.mean([c["wer"][name] for c in cells])) for name in VARIANTS}
    print(f"{'mean':>22} | {pooled['mic0']:>5.2f} {pooled['das']:>5.2f} {pooled['mvdr']:>5.2f} | "
          f"{ratio(pooled['mvdr'], pooled['mic0']):>9}")
    runtime = time.perf_counter() - started
    print(f"Whisper {args.model}, {PROFILE}, {n_utterances} utterances per condition; {runtime:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"when": datetime.now(timezone.utc).isoformat(), "quick": args.quick,
                                    "model": args.model, "array": PROFILE, "utterances_per_cell": n_utterances,
                                    "runtime_s": runtime, "mean_wer": pooled, "cells": cells},
                                   indent=1, ensure_ascii=False))
    print(f"wrote {args.out}")
    return 0


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def table_row(c) -> str:
    w = c["wer"]
    return (f"{c['rt60_s']:>6.1f} {c['noise']:>8} {c['snr_db']:>6.0f} | {w['mic0']:>5.2f} {w['das']:>5.2f} "
            f"{w['mvdr']:>5.2f} | {ratio(w['mvdr'], w['mic0']):>9}")


if __name__ == "__main__":
    sys.exit(main())
