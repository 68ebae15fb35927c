"""Front-end benchmark: DOA accuracy, beamformer SNR gain, VAD/segmenter quality and CPU cost.

Simulated rooms (pyroomacoustics): 5 x 4 x 2.8 m, RT60 0 / 0.3 / 0.6 s, ReSpeaker 4-mic and 6-mic
geometries, a talker 1-2 m away at a random azimuth, white / quasi-diffuse / point-interferer
noise at 20 / 10 / 5 / 0 dB. Our front end and the pyroomacoustics reference algorithms run on the
same signals in the same process, so the table compares ratios, not machine speed.

    python bench/frontend.py --quick           # CI: one geometry, a few cells, 2 trials
    python bench/frontend.py --trials 10 --jobs 2  # every cell (frontend.md); the README shows RT60 0.3 s
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # the RTF column is single-thread CPU time

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from parley_common.frames import Frame  # noqa: E402
from agent.audio.synth import speak  # noqa: E402
from agent.dsp.beamformer import Beamformer, BeamformerConfig  # noqa: E402
from agent.dsp.stft import StreamingStft  # noqa: E402
from agent.events import SpeechEnded, SpeechStarted  # noqa: E402
from agent.frontend import FrontEnd, FrontendConfig  # noqa: E402
from agent.hardware import load_array_profile  # noqa: E402
from agent.simulation import simulate_scene  # noqa: E402

RATE = 16000
HOP = 160
FRAME = 320
FALLBACK_SENTENCES = ("Please open the door for our guests.", "Where is the train station?",
                      "The meeting starts at nine tomorrow morning.")


def load_speech(shared: Path | None) -> list[np.ndarray]:
    import wave

    directory = shared / "speech" if shared else None
    if directory and directory.is_dir():
        out = []
        for path in sorted(directory.glob("*.wav")):
            with wave.open(str(path)) as w:
                out.append(np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(float))
        if out:
            return out
    return [speak(s).astype(float) for s in FALLBACK_SENTENCES]


def angle_error(a: float | None, b: float) -> float:
    return 180.0 if a is None else abs((a - b + 180.0) % 360.0 - 180.0)


def run_ours(scene, geometry):
    """Our front end over the mixture: events with the frame index at which each was emitted, the VAD
    decisions, the DOA and which hops it learned noise from, per frame."""
    frontend = FrontEnd(FrontendConfig(), geometry)
    events, decisions, azimuths, noise_hops = [], [], [], []
    t0 = time.process_time()
    for k, i in enumerate(range(0, len(scene.mixture) - FRAME + 1, FRAME)):
        for event in frontend.process(Frame(scene.mixture[i:i + FRAME], i, RATE)):
            events.append((k, event))
        decisions.append(frontend.is_speech)
        azimuths.append(frontend.azimuth_deg)
        noise_hops.extend(frontend.noise_hops)
    cpu_s = time.process_time() - t0
    return events, np.array(decisions), azimuths, noise_hops, cpu_s


def snr_gain_db(kind: str, geometry, scene, azimuths, noise_hops, oracle: float | None) -> float:
    """Output SNR minus mic-0 SNR, speech and noise images through the same time-varying weights, which
    learn noise on the same hops as the front end did."""
    former = Beamformer(BeamformerConfig(type=kind), geometry, RATE, 512, HOP)
    stfts = [StreamingStft(HOP, geometry.n_mics) for _ in range(3)]
    sums = np.zeros(4)
    for h in range(0, len(scene.mixture) - HOP + 1, HOP):
        k = h // FRAME
        mix = stfts[0].analyze(scene.mixture[h:h + HOP].astype(np.float32))
        speech = stfts[1].analyze(scene.speech_image[h:h + HOP].astype(np.float32))
        noise = stfts[2].analyze(scene.noise_image[h:h + HOP].astype(np.float32))
        azimuth = oracle if oracle is not None else (azimuths[k - 1] if k > 0 else None)
        former.process(mix, azimuth, noise_hops[h // HOP] if h // HOP < len(noise_hops) else False)
        if former.weights is None:
            continue
        w = np.conj(former.weights)
        sums += [np.sum(np.abs(np.einsum("fm,fm->f", w, speech)) ** 2), np.sum(np.abs(np.einsum("fm,fm->f", w, noise)) ** 2),
                 np.sum(np.abs(speech[:, 0]) ** 2), np.sum(np.abs(noise[:, 0]) ** 2)]
    return float(10 * np.log10(sums[0] / sums[1]) - 10 * np.log10(sums[2] / sums[3]))


def pra_reference(scene, geometry, truth_deg: float):
    """pyroomacoustics: STFT, SRP-PHAT and NormMUSIC DOA, far-field DAS weights; with its CPU time."""
    import pyroomacoustics as pra

    t0 = time.process_time()
    x = scene.mixture.T.astype(float)
    X = np.array([pra.transform.stft.analysis(ch, 512, 256, win=pra.hann(512)) for ch in x])  # (M, frames, F)
    X = X.transpose(0, 2, 1)
    freq_range = [300, 4000]
    errors = {}
    for name in ("SRP", "NormMUSIC"):
        algo = pra.doa.algorithms[name](geometry.mic_positions_m[:, :2].T, RATE, 512, c=343.0, num_src=1)
        algo.locate_sources(X, freq_range=freq_range)
        errors[name] = angle_error(float(np.rad2deg(algo.azimuth_recon[0])) % 360, truth_deg)
    bf = pra.Beamformer(geometry.mic_positions_m[:, :2].T, RATE, N=512)
    bf.far_field_weights(np.deg2rad(truth_deg))
    weights = bf.weights  # (M, N/2+1); output = sum conj(w) X
    S = np.array([pra.transform.stft.analysis(ch, 512, 256, win=pra.hann(512)) for ch in scene.speech_image.T])
    N = np.array([pra.transform.stft.analysis(ch, 512, 256, win=pra.hann(512)) for ch in scene.noise_image.T])
    out_s = np.einsum("mf,mtf->tf", np.conj(weights), S)
    out_n = np.einsum("mf,mtf->tf", np.conj(weights), N)
    gain = 10 * np.log10(np.sum(np.abs(out_s) ** 2) / np.sum(np.abs(out_n) ** 2)) - \
        10 * np.log10(np.sum(np.abs(S[0]) ** 2) / np.sum(np.abs(N[0]) ** 2))
    cpu_s = time.process_time() - t0
    return errors, float(gain), cpu_s


def vad_metrics(events, decisions, scene):
    labels = scene.speech_labels(FRAME)[: len(decisions)]
    pred = decisions[: len(labels)]
    tp = np.sum(pred & labels)
    f1 = 2 * tp / max(1, np.sum(pred) + np.sum(labels))
    starts = [(k, e) for k, e in events if isinstance(e, SpeechStarted)]
    ends = [(k, e) for k, e in events if isinstance(e, SpeechEnded)]
    truth = []  # where speech really starts and stops inside each recording (recordings carry silence)
    for t0, t1 in scene.utterances:
        active = np.flatnonzero(labels[t0 // FRAME: t1 // FRAME + 1])
        if active.size:
            truth.append(((t0 // FRAME + active[0]) * FRAME, (t0 // FRAME + active[-1] + 1) * FRAME))
    segments = [(s.start_sample, e.end_sample, e.reason, ks, ke) for (ks, s), (ke, e) in zip(starts, ends)]
    hit = [any(a < t1 and b > t0 for a, b, *_ in segments) for t0, t1 in truth]
    false = sum(not any(a < t1 and b > t0 for t0, t1 in truth) for a, b, *_ in segments)
    stuck = sum(reason == "max_length" for _, _, reason, _, _ in segments)
    onset, end = [], []
    for t0, t1 in truth:
        for a, b, _, ks, ke in segments:
            if a < t1 and b > t0:
                onset.append(((ks + 1) * FRAME - t0) / RATE * 1000)
                end.append(((ke + 1) * FRAME - t1) / RATE * 1000)
                break
    return dict(f1=float(f1), recall=float(np.mean(hit)), false=int(false), stuck=int(stuck),
                onset_ms=float(np.median(onset)) if onset else None, end_ms=float(np.median(end)) if end else None)


def run_cell(geometry, rt60, noise, snr, trials, speech, noise_dir, seed0):
    rows = []
    for trial in range(trials):
        rng = np.random.default_rng(seed0 + trial)
        azimuth = float(rng.uniform(0, 360))
        utterance = speech[rng.integers(len(speech))]
        scene = simulate_scene(geometry, [utterance], azimuth, distance_m=float(rng.uniform(1.0, 2.0)), rt60_s=rt60,
                               noise=noise, snr_db=snr, seed=seed0 + trial, noise_dir=noise_dir, gap_s=1.5)
        events, decisions, azimuths, noise_hops, cpu_ours = run_ours(scene, geometry)
        final_azimuth = next((e.azimuth_deg for _, e in reversed(events) if isinstance(e, SpeechStarted)), None)
        final_azimuth = azimuths[-1] if azimuths[-1] is not None else final_azimuth
        pra_errors, pra_gain, cpu_ref = pra_reference(scene, geometry, azimuth)
        rows.append(dict(
            doa_err=angle_error(final_azimuth, azimuth), pra_srp_err=pra_errors["SRP"], pra_music_err=pra_errors["NormMUSIC"],
            gain_oracle=snr_gain_db("mvdr", geometry, scene, azimuths, noise_hops, azimuth),
            gain_est=snr_gain_db("mvdr", geometry, scene, azimuths, noise_hops, None),
            gain_das=snr_gain_db("das", geometry, scene, azimuths, noise_hops, azimuth), gain_pra_das=pra_gain,
            cpu_ours=cpu_ours, cpu_ref=cpu_ref, audio_s=len(scene.mixture) / RATE, **vad_metrics(events, decisions, scene)))
    return rows


def summarize(rows):
    err = np.array([r["doa_err"] for r in rows])
    pick = lambda k: [r[k] for r in rows if r[k] is not None]  # noqa: E731
    return dict(
        doa_mean=float(err.mean()), doa_median=float(np.median(err)), doa_within10=float(np.mean(err <= 10) * 100),
        pra_srp_mean=float(np.mean(pick("pra_srp_err"))), pra_music_mean=float(np.mean(pick("pra_music_err"))),
        gain_oracle=float(np.mean(pick("gain_oracle"))), gain_est=float(np.mean(pick("gain_est"))),
        gain_est_min=float(np.min(pick("gain_est"))), gain_das=float(np.mean(pick("gain_das"))),
        gain_pra_das=float(np.mean(pick("gain_pra_das"))), vad_f1=float(np.mean(pick("f1"))),
        recall=float(np.mean(pick("recall")) * 100), false=int(sum(pick("false"))), stuck=int(sum(pick("stuck"))),
        onset_ms=float(np.median(pick("onset_ms"))) if pick("onset_ms") else None,
        end_ms=float(np.median(pick("end_ms"))) if pick("end_ms") else None,
        rtf_ours=float(sum(pick("cpu_ours")) / sum(pick("audio_s"))), rtf_ref=float(sum(pick("cpu_ref")) / sum(pick("audio_s"))))


HEADER = (f"{'array':<8}{'rt60':>5}{'noise':>8}{'snr':>5} | {'doa°':>5}{'med':>5}{'≤10°%':>6}{'praSRP':>7}{'praNM':>6} | "
          f"{'gO':>5}{'gE':>5}{'gEmin':>6}{'DAS':>5}{'praDAS':>7} | {'F1':>5}{'rec%':>5}{'fal':>4}{'stk':>4}{'on':>5}{'end':>5} | "
          f"{'rtf':>6}{'ref/us':>7}")
LEGEND = ("doa = ours (mean/median/% within 10°) vs pyroomacoustics SRP and NormMUSIC on all frames; gains in dB vs mic 0 "
          "(O oracle DOA, E estimated, MVDR; DAS ours and pyroomacoustics' far-field DAS at the oracle angle); on/end = "
          "median onset / end-of-speech event latency in ms; rtf = our CPU seconds per audio second (single thread); "
          "ref/us = pyroomacoustics STFT+SRP+NormMUSIC+DAS CPU time / ours")
MD_HEADER = ("| array | RT60 s | noise | SNR dB | DOA err mean / median ° (≤10°) | pra SRP / NormMUSIC mean ° | "
             "gain est. DOA (min) dB | gain oracle dB | DAS / pra DAS dB | VAD F1 | recall / false / stuck | "
             "end latency ms | RTF | pra/ours CPU |\n" + "|---" * 14 + "|")


def table_row(c) -> str:
    return (f"{c['array'].split('-')[1]:<8}{c['rt60_s']:>5.1f}{c['noise']:>8}{c['snr_db']:>5.0f} | {c['doa_mean']:>5.1f}"
            f"{c['doa_median']:>5.1f}{c['doa_within10']:>6.0f}{c['pra_srp_mean']:>7.1f}{c['pra_music_mean']:>6.1f} | "
            f"{c['gain_oracle']:>5.1f}{c['gain_est']:>5.1f}{c['gain_est_min']:>6.1f}{c['gain_das']:>5.1f}"
            f"{c['gain_pra_das']:>7.1f} | {c['vad_f1']:>5.2f}{c['recall']:>5.0f}{c['false']:>4}{c['stuck']:>4}"
            f"{(c['onset_ms'] or 0):>5.0f}{(c['end_ms'] or 0):>5.0f} | {c['rtf_ours']:>6.3f}{c['rtf_ref'] / c['rtf_ours']:>7.1f}")


def markdown_row(c) -> str:
    return (f"| {c['array'].split('-')[1]} | {c['rt60_s']:.1f} | {c['noise']} | {c['snr_db']:.0f} | "
            f"{c['doa_mean']:.1f} / {c['doa_median']:.1f} ({c['doa_within10']:.0f} %) | "
            f"{c['pra_srp_mean']:.1f} / {c['pra_music_mean']:.1f} | {c['gain_est']:.1f} ({c['gain_est_min']:.1f}) | "
            f"{c['gain_oracle']:.1f} | {c['gain_das']:.1f} / {c['gain_pra_das']:.1f} | {c['vad_f1']:.2f} | "
            f"{c['recall']:.0f} % / {c['false']} / {c['stuck']} | {(c['end_ms'] or 0):.0f} | {c['rtf_ours']:.3f} | "
            f"{c['rtf_ref'] / c['rtf_ours']:.1f} |")


def vad_cpu_split(shared: Path | None) -> list[dict]:
    """Front-end RTF with each VAD on one scene per array, best of three, in this process: how much
    of the cost is the VAD (the grid's RTF column runs two workers on two cores, so it is noisier)."""
    from parley_common.vad.engines import VadConfig

    speech = load_speech(shared)
    out = []
    for profile in ("respeaker-4mic-hat", "respeaker-6mic-hat"):
        geometry = load_array_profile(profile)
        scene = simulate_scene(geometry, speech[:2], 60.0, rt60_s=0.3, noise="point", snr_db=10.0, seed=5,
                               noise_dir=shared / "noise" if shared else None, gap_s=1.5)
        row = {"array": profile}
        for engine in ("silero", "webrtc"):
            best_s = np.inf
            for _ in range(3):
                frontend = FrontEnd(FrontendConfig(vad=VadConfig(engine=engine)), geometry)
                t0 = time.process_time()
                for i in range(0, len(scene.mixture) - FRAME + 1, FRAME):
                    frontend.process(Frame(scene.mixture[i:i + FRAME], i, RATE))
                best_s = min(best_s, time.process_time() - t0)
            row[f"rtf_{engine}"] = best_s / (len(scene.mixture) / RATE)
        out.append(row)
    return out


def measure_cell(job):
    """One grid cell in a worker process; returns its summary and the worker's peak RSS."""
    index, (profile, rt60, noise, snr), trials, shared = job
    speech = load_speech(shared)
    noise_dir = shared / "noise" if shared else None
    rows = run_cell(load_array_profile(profile), rt60, noise, snr, trials, speech, noise_dir, seed0=1000 * index)
    cell = dict(array=profile, rt60_s=rt60, noise=noise, snr_db=snr, trials=trials, **summarize(rows))
    return cell, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=1, help="cells measured in parallel, one process each")
    parser.add_argument("--rt60", type=float, nargs="+", default=[0.0, 0.3, 0.6], help="reverberation times to run, s")
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "frontend.json")
    args = parser.parse_args()
    shared = args.shared_data if args.shared_data.is_dir() else None
    if args.quick:
        grid = [("respeaker-4mic-hat", 0.3, noise, 10.0) for noise in ("white", "diffuse", "point")]
        trials = 2
    else:
        grid = [(g, rt, n, s) for g in ("respeaker-4mic-hat", "respeaker-6mic-hat") for rt in args.rt60
                for n in ("white", "diffuse", "point") for s in (20.0, 10.0, 5.0, 0.0)]
        trials = args.trials
    jobs = [(index, cell, trials, shared) for index, cell in enumerate(grid)]
    print(HEADER)
    cells, peak_rss_mb = [], 0.0
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for cell, rss_mb in pool.map(measure_cell, jobs):
            cells.append(cell)
            peak_rss_mb = max(peak_rss_mb, rss_mb)
            print(table_row(cell), flush=True)
    print(f"peak RSS of a worker {peak_rss_mb:.0f} MB; {LEGEND}")
    split = vad_cpu_split(shared)
    print("whole front end, one process, best of 3:  array   RTF silero  RTF webrtc")
    for row in split:
        print(f"{'':>42}{row['array'].split('-')[1]:<8}{row['rtf_silero']:>11.4f}{row['rtf_webrtc']:>12.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"when": datetime.now(timezone.utc).isoformat(), "quick": args.quick,
                                    "peak_rss_mb": peak_rss_mb, "vad_cpu_split": split, "cells": cells}, indent=1))
    markdown = args.out.with_suffix(".md")
    markdown.write_text("\n".join([MD_HEADER, *(markdown_row(c) for c in cells)]) + "\n")
    print(f"wrote {args.out} and {markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
