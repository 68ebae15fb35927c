"""Attribution under faults: the real agent -> a TCP fault proxy -> the real gateway, with noise-only utterances.

    python bench/uplink_faults.py --backend v1 --minutes 4
    python bench/uplink_faults.py --backend usp --minutes 4

The scene puts a mumble (speech backwards, muffled: a voice with no words) 1 s before every
sentence, in the room's kitchen noise (``shared/data/noise``), so the agent sends utterances the
gateway judges noise (no v1 final) right before speech: the case where a phrase starting in the
gateway's pre-roll used to land on the previous utterance. It plays in real time, ``--minutes``
long, while faults come in turn every ``--fault-every-s``: the gateway killed with SIGKILL (and
restarted), the connection stalled (half-open), reset (RST), the gateway stopped with SIGSTOP for
5 s, the connection cut. Once every final is in (``wait_until_drained``), each one in the
transcript is checked against the scene: *own* when its start lies in a sentence's span and its
words do not say another sentence; *shifted* when they do, or when a mumble's final says the next
sentence all but word for word; a *duplicate* when a sentence spoken once has two finals that
say it (two that do not are the agent's segmenter cutting it in two: *split*); a sentence with no
final is *missing*. Figures depend on the machine's load: run it niced.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from soak import free_port, start_gateway  # noqa: E402

from agent.config.schema import load_agent_config  # noqa: E402
from agent.daemon import Agent, configure_logging  # noqa: E402
from agent.demo import DEMO_LINES, DEMO_PROFILE, demo_config_text, write_multichannel_wav  # noqa: E402
from agent.outputs.transcript import read_transcript  # noqa: E402
from agent.audio.synth import speak  # noqa: E402
from agent.hardware import load_array_profile  # noqa: E402
from agent.simulation import simulate_scene  # noqa: E402
from tests.support.proxy import FaultProxy  # noqa: E402
from tests.support.speech import normalise  # noqa: E402

RATE_HZ = 16000
NOISE_S = 0.8
DRAIN_S = 600.0  # after the scene ends, at most this long for every final to come in
OUTBOX_S = 900.0  # speech kept while the gateway is down or behind: this run checks placing, not the budget


def mumble(speech: np.ndarray, seed: int) -> np.ndarray:
    """Speech-like sound with no words in it: 0.8 s of speech played backwards and muffled (low-passed
    at ~400 Hz), as through a wall. The VAD hears a voice; the recogniser finds nothing to write."""
    rng = np.random.default_rng(seed)
    n = int(NOISE_S * RATE_HZ)
    start = int(rng.integers(0, max(1, speech.size - n)))
    backwards = speech[start:start + n][::-1].astype(np.float64)
    kernel = np.sinc(2 * 400 / RATE_HZ * (np.arange(129) - 64)) * np.hamming(129)
    muffled = np.convolve(backwards, kernel / kernel.sum(), mode="same")
    return (muffled * np.abs(speech).max() / (np.abs(muffled).max() + 1e-9)).astype(np.float32)


def make_noisy_scene(work: Path, shared_data: Path | None, minutes: float):
    """Mumble, 1 s, sentence, 1 s, mumble, ..., the whole repeated to last ``minutes``; returns the WAV,
    the length of one copy and its [(start, end, text or None)]."""
    signals, texts = [], []
    for k, line in enumerate(DEMO_LINES):
        speech = speak(line.text, voice=line.voice)
        other = speak(DEMO_LINES[(k + 1) % len(DEMO_LINES)].text, voice=line.voice)
        signals += [mumble(other, k), speech]
        texts += [None, line.text]
    noise_dir = shared_data / "noise" if shared_data and (shared_data / "noise").is_dir() else None
    scene = simulate_scene(load_array_profile(DEMO_PROFILE), signals, talker_azimuth_deg=DEMO_LINES[0].azimuth_deg,
                           distance_m=1.5, rt60_s=0.3, noise="diffuse", snr_db=20.0, seed=7, noise_dir=noise_dir,
                           gap_s=1.0)
    path = work / "scene.wav"
    copies = int(np.ceil(60.0 * minutes * RATE_HZ / scene.mixture.shape[0]))
    write_multichannel_wav(path, np.tile(scene.mixture, (copies, 1)), RATE_HZ)
    spans = [(start, end, text) for (start, end), text in zip(scene.utterances, texts)]
    return path, scene.mixture.shape[0], spans


class Faults:
    """One fault after another: SIGKILL (restart), stall, RST, SIGSTOP 5 s, cut."""

    KINDS = ("kill -9", "stall", "reset", "sigstop", "cut")

    def __init__(self, port: int, proxy: FaultProxy):
        self.port, self.proxy = port, proxy
        self.gateway = start_gateway(port)
        self.done: list[tuple[float, str]] = []

    def inject(self, t_s: float) -> None:
        kind = self.KINDS[len(self.done) % len(self.KINDS)]
        if kind == "kill -9":
            self.gateway.kill()
            self.gateway.wait(10)
            self.gateway = start_gateway(self.port)
        elif kind == "stall":
            self.proxy.stall_current()
        elif kind == "reset":
            self.proxy.reset()
        elif kind == "sigstop":
            self.gateway.send_signal(signal.SIGSTOP)
            time.sleep(5.0)
            self.gateway.send_signal(signal.SIGCONT)
        else:
            self.proxy.cut()
        self.done.append((round(t_s, 1), kind))

    def close(self) -> None:
        self.gateway.terminate()
        self.gateway.wait(10)


def similarity(a: str, b: str) -> float:
    """Character-level likeness of the normalised words (espeak speech is often misheard word by word)."""
    return difflib.SequenceMatcher(None, " ".join(normalise(a)), " ".join(normalise(b))).ratio()


LIKE = 0.55  # this alike or more: the final says that sentence
SAME = 0.85  # a mumble's final this alike the next sentence is that sentence's (the recogniser may
# hallucinate a phrase it heard before, "Good morning." before "Good morning everyone", never all of it)


def judge(records: list[dict], spans, scene_samples: int, audio_samples: int) -> dict:
    """Each final with words against the span its start lies in and the sentence its words say.

    In a sentence's span (from 0.6 s before it): *own*, unless its words say another sentence
    (*shifted*). In a mumble's span: *shifted* when its words say the sentence after it, else
    words the recogniser heard in the noise (*noise_words*). Elsewhere: *outside*."""
    sentences = [k for k, (_, _, text) in enumerate(spans) if text]
    counts = {"own": 0, "shifted": 0, "noise_words": 0, "outside": 0}
    answered: dict[tuple[int, int], list[str]] = {}
    problems = []
    for record in records:
        if not record["source"]:
            continue
        loop, at = divmod(record["start_sample"], scene_samples)
        where = next((k for k, (start, end, _) in enumerate(spans) if start - 0.6 * RATE_HZ <= at < end), None)
        likeness = {k: similarity(spans[k][2], record["source"]) for k in sentences}
        said = max(likeness, key=likeness.get)
        if where is None:
            verdict = "outside"
        elif spans[where][2]:
            verdict = "shifted" if said != where and likeness[said] >= LIKE and likeness[said] - likeness[where] > 0.2 \
                else "own"
        else:
            verdict = "shifted" if likeness.get(where + 1, 0.0) >= SAME else "noise_words"
        counts[verdict] += 1
        if verdict == "own":
            answered.setdefault((loop, where), []).append(record["source"])
        else:
            problems.append((verdict, record["utterance"], record["source"], round(at / RATE_HZ, 2), where))
    due = [(loop, k) for loop in range(round(audio_samples / scene_samples)) for k in sentences]
    return {"finals_with_words": sum(counts.values()), **counts,
            "duplicated": sum(_alike_pairs(texts) for texts in answered.values()),
            "split": sum(len(texts) - 1 - _alike_pairs(texts) for texts in answered.values()), "sentences_due": len(due),
            "missing": sum(key not in answered for key in due), "empty_finals": sum(not r["source"] for r in records),
            "problems": problems[:30]}


def _alike_pairs(texts: list[str]) -> int:
    """Finals of one sentence that say the same thing: written twice. Unlike ones are the agent's
    segmenter cutting the sentence in two (*split*), each piece under its own utterance."""
    return sum(any(similarity(a, b) >= LIKE for a in texts[:i]) for i, b in enumerate(texts))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("v1", "usp"), default="v1")
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--fault-every-s", type=float, default=40.0)
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    configure_logging("warning")
    shared = args.shared_data if args.shared_data.is_dir() else None
    work = Path(f"/tmp/parley-bench-faults-{os.getpid()}")
    work.mkdir(parents=True, exist_ok=True)
    scene_path, scene_samples, spans = make_noisy_scene(work, shared, args.minutes)
    port = free_port()
    proxy = FaultProxy(port)
    faults = Faults(port, proxy)
    try:
        text = demo_config_text(scene_path, proxy.url, work, realtime=True).replace("backend: log", "backend: none")
        text = text.replace("uplink:\n", f"uplink:\n  outbox_max_audio_s: {OUTBOX_S}\n")
        # speech is asked for and filed, but written at once: a mic gated while the box talks would
        # not hear the next sentence, and that is the half-duplex rule, not the uplink
        text = text.replace("    backend: wav\n", "    backend: wav\n    realtime: false\n")
        if args.backend == "usp":
            text = text.replace("backend: gateway", "backend: azure")
        (work / "agent.yaml").write_text(text)
        config = load_agent_config(work / "agent.yaml")
        agent = Agent(config)
        agent.console.config = type(agent.console.config)(enabled=False)
        started = time.monotonic()
        agent.start()
        next_fault = started + args.fault_every_s
        while time.monotonic() - started < 60.0 * args.minutes:
            time.sleep(0.5)
            if time.monotonic() >= next_fault:
                faults.inject(time.monotonic() - started)
                next_fault = time.monotonic() + args.fault_every_s
        drained = agent.wait_until_drained(timeout_s=DRAIN_S)
        audio_samples = agent.counters.frames * config.capture.frame_ms * RATE_HZ // 1000
        agent.close(timeout_s=5.0)
    finally:
        faults.close()
        proxy.close()
    report = {"when": datetime.now(timezone.utc).isoformat(), "backend": args.backend,
              "minutes": args.minutes, "faults": faults.done, "work": str(work), "drained": drained,
              "dropped_utterances": agent.uplink.dropped_utterances, "muted_frames": agent.counters.muted_frames,
              **judge(read_transcript(work / "transcript.jsonl"), spans, scene_samples, audio_samples)}
    print(json.dumps({k: v for k, v in report.items() if k != "problems"}))
    for problem in report["problems"]:
        print("  ", problem)
    out = args.out or REPO / "bench" / "results" / f"uplink_faults_{args.backend}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
