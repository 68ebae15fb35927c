"""WER through the array: the number the front end exists for, front-end variants side by side.

Simulated rooms (``agent.simulation.simulate_scene``: 5 x 4 x 2.8 m, a talker 1.5 m away at a
random azimuth) with the shared ARCTIC recordings (espeak sentences without the shared data) said
one after another with 1.5 s gaps, quasi-diffuse or point-interferer real noise at 10 / 5 / 0 dB,
RT60 0.3 / 0.6 s, the ReSpeaker 4-mic and 6-mic arrays, several seeds (talker and interferer
positions, noise excerpts). Each scene goes through the real front end (``FrontEnd``: DOA,
beamformer, AGC, post-filter) once per variant; its mono output is put back on the input's
timeline (output frames carry their true sample index). Variants:

    mic0          raw mic 0
    mvdr          today's front end (DOA-steered MVDR, AGC)
    mvdr+dfn<N>   + DeepFilterNet3 post-filter, attenuation limited to N dB (VAD hears the beam)
    mvdr+dfn<N>v  the same, the VAD hearing the post-filter's output
    mvdr+dfn<N>g  the same, the post-filter's local SNR also gating the beam's noise learning
    default       the shipped FrontendConfig() (today: mvdr; the post-filter ships off)
    <any>@oracle  the same steered at the talker's true azimuth: what a perfect DOA would give
    <any>@presence  the same with the beam's noise learned only where the talker is silent (the
                  scene's truth, reverberant tail included): what a perfect speech-presence gives
    reverberant   mic 0's speech image without noise (the goal's reference)
    dry           the sentence as recorded (decoded once)

The last variant is the candidate the table compares against mvdr and the reverberant reference
(``default_variant`` in the JSON); ``mean_wer["default"]`` is whichever variant run is the shipped
FrontendConfig() (``shipped_variant``).

Recognition: Whisper tiny.en through the gateway's own recognizer (language en, beam 5 as the
gateway decodes finals; ``--beam 1`` is greedy), each utterance decoded on its own with the scene's
known boundaries: [start - 0.2 s, end + 0.5 s). ``--segmenter`` adds, for the default variant, the
same audio cut where the front end's own segmenter put its utterances (pre-roll, hangover), so what
the boundaries cost is the difference. Per-utterance edits are capped at the reference length (one
hallucinated paragraph cannot outweigh the rest); WER is pooled over a cell's utterances;
``mean_wer`` averages the cells. RTF is the front end's CPU seconds per audio second in the worker
(one core).

    python bench/array_wer.py --quick   # 4-mic, RT60 0.3, 10 / 0 dB, 1 seed, 3 utterances: ~3 min
    python bench/array_wer.py           # the full grid: 2 arrays x 2 RT60 x 2 noises x 3 SNRs x 2 seeds x 7
    python bench/array_wer.py --report bench/results/array_wer.json   # a saved run as a markdown table

Decoding dominates (every decode encodes a 30 s window): 12 cells x 4 utterances x 3 variants took
~17 min on a loaded 2-core machine (bench/README.md lists the runs taken).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

from parley_common.frames import Frame  # noqa: E402
from parley_common.vad.events import SpeechEnded, SpeechStarted  # noqa: E402
from agent.dsp.postfilter import PostfilterConfig  # noqa: E402
from agent.frontend import FrontEnd, FrontendConfig  # noqa: E402
from agent.hardware import load_array_profile  # noqa: E402
from agent.simulation import simulate_scene  # noqa: E402
from gateway.engines.whisper_asr import DecodeOptions, WhisperRecognizer  # noqa: E402
from gateway.engines.whisper_models import resolve_model  # noqa: E402
from tests.support.data import shared_data_dir  # noqa: E402
from tests.support.speech import english_samples, word_errors  # noqa: E402

RATE = 16000
FRAME = 320
BEFORE_S, AFTER_S = 0.2, 0.5
ORACLE_TAIL_S = 0.6  # an utterance's reverberant tail, for the @presence variant (RT60 up to 0.6 s)
REFERENCES = ("reverberant", "dry")
NUMBERS = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven",
           "8": "eight", "9": "nine", "10": "ten", "20th": "twentieth", "9:00": "nine o'clock"}


def spell_numbers(text: str) -> str:
    """Whisper writes "20th" and "9:00" where the references spell them out (as in bench/asr.py)."""
    return " ".join(NUMBERS.get(word.strip(".,?!"), word) for word in text.lower().split())


def variant_config(name: str, talker_azimuth_deg: float = 0.0) -> FrontendConfig | None:
    """``mvdr``, ``mvdr+dfn12``, ``mvdr+dfn12v`` (VAD hears it), ``mvdr+dfn12g`` (gates noise learning),
    any of them ``@oracle`` (steered at ``talker_azimuth_deg``) or ``@presence`` (its config unchanged:
    ``front_end_output`` gates its noise learning); mic0: None."""
    if name == "mic0":
        return None
    if name.endswith("@presence"):
        return variant_config(name.removesuffix("@presence"), talker_azimuth_deg)
    if name.endswith("@oracle"):
        config = variant_config(name.removesuffix("@oracle"))
        assert config is not None, name
        return replace(config, beamformer=replace(config.beamformer, fixed_azimuth_deg=talker_azimuth_deg))
    base = FrontendConfig()
    if name == "default":
        return base
    if name == "mvdr":
        return replace(base, postfilter=PostfilterConfig(type="none"))
    stage = name.removeprefix("mvdr+dfn")
    flags = stage.lstrip("0123456789")
    limit = float(stage[: len(stage) - len(flags)] or 100)
    postfilter = PostfilterConfig(type="deepfilternet", max_attenuation_db=limit,
                                  vad_input="filtered" if "v" in flags else "beamformed",
                                  speech_presence_snr_db=0.0 if "g" in flags else None)
    return replace(base, postfilter=postfilter)


class OraclePresenceFrontEnd(FrontEnd):
    """The front end with the MVDR's noise learning gated by where the talker really speaks (the
    scene's utterances, their reverberant tail included) instead of by the VAD: the most a better
    speech-presence estimate could give the beam. A bench diagnostic, not a product setting."""

    def __init__(self, config: FrontendConfig, geometry, speech_spans: list[tuple[int, int]]):
        super().__init__(config, geometry)
        self._speech_spans = speech_spans

    def process(self, frame: Frame, muted: bool = False, reference=None):
        end = frame.start_sample + frame.n_samples
        self._presence = any(a < end and b > frame.start_sample for a, b in self._speech_spans)
        return super().process(frame, muted, reference)


def front_end_output(scene, geometry, config: FrontendConfig, oracle_presence: bool = False):
    """The front end's mono output on the input's timeline, its CPU seconds, and its segments."""
    if oracle_presence:
        spans = [(start - int(0.05 * RATE), end + int(ORACLE_TAIL_S * RATE)) for start, end in scene.utterances]
        frontend: FrontEnd = OraclePresenceFrontEnd(config, geometry, spans)
    else:
        frontend = FrontEnd(config, geometry)
    mixture = scene.mixture
    pad = (-len(mixture)) % FRAME
    mixture = np.concatenate([mixture, np.zeros((pad, mixture.shape[1]), mixture.dtype)])
    out = np.zeros(len(mixture), np.int16)
    segments, start = [], None
    cpu0 = time.process_time()
    for i in range(0, len(mixture), FRAME):
        events = frontend.process(Frame(mixture[i:i + FRAME], i, RATE))
        frame = frontend.last_output
        a, b = frame.start_sample, frame.start_sample + frame.n_samples
        samples = frame.samples[:, 0]
        if b > 0:
            samples, a = samples[max(0, -a):], max(0, a)
            out[a:b] = samples[: len(out) - a]
        for event in events + (frontend.flush() if i + FRAME >= len(mixture) else []):
            if isinstance(event, SpeechStarted):
                start = event.start_sample
            elif isinstance(event, SpeechEnded) and start is not None:
                segments.append((max(0, start), event.end_sample))
    cpu_s = time.process_time() - cpu0
    return out[: len(scene.mixture)], cpu_s, segments


def make_cell(job):
    """One scene in a worker process: per variant the signal, and per utterance its windows."""
    index, (array, rt60, noise, snr, seed), n_utterances, variants, segmenter, shared = job
    samples = english_samples(shared, limit=100)
    chosen = np.random.default_rng(7).choice(len(samples), size=min(n_utterances, len(samples)), replace=False)
    scene_seed = 1000 * seed + 100 + index  # the same sentences in every cell; positions and noise vary
    rng = np.random.default_rng(scene_seed)
    geometry = load_array_profile(array)
    azimuth = float(rng.uniform(0, 360))
    t0 = time.perf_counter()
    scene = simulate_scene(geometry, [samples[i][1].astype(float) for i in chosen], azimuth, distance_m=1.5,
                           rt60_s=rt60, noise=noise, snr_db=snr, seed=scene_seed,
                           noise_dir=shared / "noise" if shared else None, gap_s=1.5)
    sim_s = time.perf_counter() - t0
    audio_s = len(scene.mixture) / RATE
    signals = {"mic0": scene.mixture[:, 0].copy(),
               "reverberant": np.clip(np.round(scene.speech_image[:, 0]), -32768, 32767).astype(np.int16)}
    rtf, segments = {}, []
    for name in variants:
        config = variant_config(name, azimuth)
        if config is not None:
            signals[name], cpu_s, found = front_end_output(scene, geometry, config, name.endswith("@presence"))
            rtf[name] = cpu_s / audio_s
            if name == variants[-1] and segmenter:
                segments = found
    clips = []
    for i, (start, end) in zip(chosen, scene.utterances):
        a, b = max(0, start - int(BEFORE_S * RATE)), min(len(scene.mixture), end + int(AFTER_S * RATE))
        windows = {name: signals[name][a:b].copy() for name in signals}
        if segmenter:
            windows["segmented"] = [signals[variants[-1]][sa:sb].copy() for sa, sb in segments if sa < end and sb > start]
        clips.append((samples[i][0], samples[i][1], windows))
    meta = dict(array=array, rt60_s=rt60, noise=noise, snr_db=snr, seed=seed, azimuth_deg=azimuth,
                interferer_deg=scene.interferer_azimuth_deg, sim_s=sim_s, rtf=rtf, segments=len(segments))
    return meta, clips


class Judge:
    """Decodes through the gateway's recognizer and scores, capping each utterance's edits at its length."""

    def __init__(self, model: str, processes: int = 1, beam_size: int = 1, language: str = "en"):
        self.recognizer = WhisperRecognizer(processes)
        self.pool = ThreadPoolExecutor(processes)  # one phrase in flight per worker, as sessions do
        self.options = DecodeOptions(str(resolve_model(model)), language, beam_size)
        self.recognizer.warm_up([self.options.model_path])
        self._dry: dict[str, tuple[int, str]] = {}

    def decode(self, pcm: np.ndarray) -> str:
        stream = self.recognizer.open_stream(self.options)
        try:
            for i in range(0, len(pcm), 1600):
                stream.feed(pcm[i:i + 1600].astype("<i2").tobytes())
            return stream.finish()
        finally:
            stream.close()

    def score(self, reference: str, pcm) -> tuple[int, int, str]:
        pieces = pcm if isinstance(pcm, list) else [pcm]
        hypothesis = " ".join(self.decode(p) for p in pieces if len(p))
        errors, words = word_errors(reference, spell_numbers(hypothesis))
        return min(errors, words), words, hypothesis

    def dry(self, reference: str, pcm: np.ndarray) -> tuple[int, str]:
        if reference not in self._dry:
            self._dry[reference] = self.score(reference, pcm)[0::2]
        return self._dry[reference]

    def close(self) -> None:
        self.pool.shutdown()
        self.recognizer.close()


def judge_cell(judge: Judge, meta: dict, clips, names: list[str]) -> dict:
    def one(text, dry_pcm, windows, name):
        return judge.dry(text, dry_pcm) if name == "dry" else judge.score(text, windows[name])[0::2]

    futures = [[judge.pool.submit(one, *clip, name) for name in names] for clip in clips]
    errors, words, rows = dict.fromkeys(names, 0), 0, []
    for (text, _dry, _windows), decoded in zip(clips, futures):
        row = {"reference": text}
        for name, future in zip(names, decoded):
            e, row[name] = future.result()
            errors[name] += e
        words += word_errors(text, "")[1]
        rows.append(row)
    return dict(meta, words=words, wer={name: errors[name] / words for name in names}, utterances=rows)


def summarise(cells: list[dict], names: list[str]) -> dict:
    mean = {name: float(np.mean([c["wer"][name] for c in cells])) for name in names}
    rtf = {name: float(np.mean([c["rtf"][name] for c in cells])) for name in cells[0]["rtf"]}
    return {"mean_wer": mean, "rtf": rtf}


def paired_excess(cell: dict, variant: str, baseline: str) -> tuple[float, float]:
    """(WER of ``variant`` minus ``baseline``, the standard error of that paired difference) in one
    cell, from its per-utterance capped edits: a cell is worse "beyond its noise" past 2 errors."""
    diffs = []
    for row in cell["utterances"]:
        e_v, n = word_errors(row["reference"], spell_numbers(row[variant]))
        e_b, _ = word_errors(row["reference"], spell_numbers(row[baseline]))
        diffs.append(min(e_v, n) - min(e_b, n))
    words = cell["words"]
    se = float(np.sqrt(len(diffs) * np.var(diffs, ddof=1)) / words) if len(diffs) > 1 else float("nan")
    return sum(diffs) / words, se


def markdown(result: dict) -> str:
    """The results as a bench/README.md table: WER per variant, and as a ratio to the reverberant reference."""
    default = result["default_variant"]
    names = [n for n in result["variants"] + ["segmented"] + list(REFERENCES) if n in result["mean_wer"]]
    lines = ["| array | RT60 s | noise | SNR dB | " + " | ".join(names) + f" | {default} / reverberant | "
             f"{default} - mvdr (2 SE) |", "|" + "---|" * (len(names) + 6)]
    for c in result["cells"]:
        w = c["wer"]
        excess, se = paired_excess(c, default, "mvdr") if "mvdr" in w else (float("nan"), float("nan"))
        flag = " **worse**" if excess > 2 * se else ""
        lines.append(f"| {c['array'].removeprefix('respeaker-').removesuffix('-hat')} | {c['rt60_s']} | {c['noise']} | "
                     f"{c['snr_db']:.0f} | " + " | ".join(f"{w[n]:.2f}" for n in names)
                     + f" | {w[default] / w['reverberant'] if w['reverberant'] else float('nan'):.2f} | "
                     f"{excess:+.2f} ({2 * se:.2f}){flag} |")
    m = result["mean_wer"]
    lines.append("| **mean** | | | | " + " | ".join(f"**{m[n]:.2f}**" for n in names)
                 + f" | **{m[default] / m['reverberant']:.2f}** | |")
    lines.append("| RTF (CPU s / audio s) | | | | " + " | ".join(
        f"{result['rtf'][n]:.3f}" if n in result["rtf"] else "" for n in names) + " | | |")
    return "\n".join(lines)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--variants", default="mic0,mvdr,default",
                        help="comma-separated, see above; the last one is the proposed default")
    parser.add_argument("--arrays", default=None, help="default respeaker-4mic-hat,respeaker-6mic-hat (quick: 4-mic)")
    parser.add_argument("--rt60", default=None, help="default 0.3,0.6 (quick: 0.3)")
    parser.add_argument("--snr", default=None, help="default 10,5,0 (quick: 10,0)")
    parser.add_argument("--noises", default="diffuse,point")
    parser.add_argument("--seeds", type=int, default=None, help="default 2 (quick: 1)")
    parser.add_argument("--utterances", type=int, default=None, help="per cell (default 7 = all ARCTIC; quick 3)")
    parser.add_argument("--segmenter", action="store_true", help="also decode the last variant as its segmenter cut it")
    parser.add_argument("--jobs", type=int, default=2, help="scenes simulated in parallel, one process each")
    parser.add_argument("--decoders", type=int, default=2, help="recognizer worker processes (the gateway's default)")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--beam", type=int, default=5, help="beam size of every decode (the gateway's finals: 5)")
    parser.add_argument("--shared-data", type=Path, default=shared_data_dir() or Path("/work/shared/data"),
                        help="the shared ARCTIC speech and noise (default ../shared/data or $PARLEY_SHARED_DATA)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "array_wer.json")
    parser.add_argument("--report", type=Path, default=None, help="print a saved result as a markdown table and stop")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if args.report:
        print(markdown(json.loads(args.report.read_text())))
        return 0
    started = time.perf_counter()
    shared = args.shared_data if args.shared_data.is_dir() else None
    arrays = (args.arrays or ("respeaker-4mic-hat" if args.quick else "respeaker-4mic-hat,respeaker-6mic-hat")).split(",")
    rt60s = [float(x) for x in (args.rt60 or ("0.3" if args.quick else "0.3,0.6")).split(",")]
    snrs = [float(x) for x in (args.snr or ("10,0" if args.quick else "10,5,0")).split(",")]
    seeds = range(args.seeds or (1 if args.quick else 2))
    n_utterances = args.utterances or (3 if args.quick else 7)
    variants = args.variants.split(",")
    grid = [(a, rt, noise, snr, seed) for seed in seeds for a in arrays for rt in rt60s
            for noise in args.noises.split(",") for snr in snrs]
    jobs = [(index, cell, n_utterances, variants, args.segmenter, shared) for index, cell in enumerate(grid)]
    names = variants + (["segmented"] if args.segmenter else []) + list(REFERENCES)
    judge = Judge(args.model, args.decoders, beam_size=args.beam)
    cells = []
    print(header(names, variants[-1]))
    try:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for meta, clips in pool.map(make_cell, jobs):
                cells.append(judge_cell(judge, meta, clips, names))
                print(table_row(cells[-1], names, variants[-1]), flush=True)
    finally:
        judge.close()
    summary = summarise(cells, names)
    # the agent's own FrontendConfig(), whatever the run called it; never an oracle's run of it
    shipped = next((v for v in variants if "@" not in v and variant_config(v) == FrontendConfig()), None)
    if shipped is not None:
        summary["mean_wer"]["default"] = summary["mean_wer"][shipped]
    print(table_row({"array": "mean", "rt60_s": 0, "noise": "", "snr_db": 0, "seed": "", "wer": summary["mean_wer"]},
                    names, variants[-1]))
    print("RTF (front end CPU s per audio s): " + ", ".join(f"{k} {v:.3f}" for k, v in summary["rtf"].items()))
    runtime = time.perf_counter() - started
    print(f"Whisper {args.model} beam {args.beam}, {len(cells)} scenes x {n_utterances} utterances; {runtime:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"when": datetime.now(timezone.utc).isoformat(), "quick": args.quick,
                                    "model": args.model, "beam_size": args.beam, "arrays": arrays, "variants": variants,
                                    "default_variant": variants[-1], "shipped_variant": shipped, "utterances_per_cell": n_utterances,
                                    "runtime_s": runtime, **summary, "cells": cells}, indent=1, ensure_ascii=False))
    print(f"wrote {args.out}")
    return 0


def header(names: list[str], default: str) -> str:
    return (f"{'array':>6} {'RT60':>4} {'noise':>7} {'SNR':>3} {'seed':>4} | " + " ".join(f"{n[-11:]:>11}" for n in names)
            + f" | {default[-11:]}/rev")


def table_row(c: dict, names: list[str], default: str) -> str:
    w = c["wer"]
    array = c["array"].removeprefix("respeaker-").removesuffix("-hat")
    rev = w["reverberant"]
    return (f"{array:>6} {c['rt60_s']:>4.1f} {c['noise']:>7} {c['snr_db']:>3.0f} {c['seed']:>4} | "
            + " ".join(f"{w[n]:>11.2f}" for n in names) + f" | {(w[default] / rev if rev else float('nan')):>8.2f}")


if __name__ == "__main__":
    sys.exit(main())
