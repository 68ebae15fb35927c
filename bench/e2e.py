"""End-to-end latency over the demo scene: the real agent, the real gateway, real-time capture.

    python bench/e2e.py [--backend gateway|azure]
    python bench/e2e.py --conversation [--quick] [--routing-only]

Measures, per utterance: end of speech (ground truth of the simulated scene) -> final text on the
console, and -> first TTS byte reaching the speaker; and, per audio frame, the latency the agent
adds between a frame leaving capture and its bytes going onto the socket (target: p99 <= one
frame). Baseline, side by side in the same process: a bare Translator v1 client streaming mic 0
of the same scene in real time to the same gateway, so the ratio shows what the agent adds.

``--conversation``: routing accuracy of two talkers taking turns (English and Spanish, espeak-ng,
four sentences and two short replies) over seatings 30°-180° apart, RT60 0.3/0.6 s, SNR 10/5 dB,
for each ``route_by``: direction (front end + router), language (the gateway's identification code
on each routed utterance's beamformed audio), both (the seat's language unless the identification
is sure of the other); then the demo's two-seat scene through the real agent and gateway, with
end of speech -> final and -> first TTS byte per direction (en->es, es->en).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from agent.config.schema import load_agent_config  # noqa: E402
from agent.daemon import Agent  # noqa: E402
from agent.demo import CONVERSATION_GAP_S, CONVERSATION_LINES, demo_config_text, make_scene  # noqa: E402
from gateway.server import GatewayThread  # noqa: E402
from gateway_bench_client import stream_once  # noqa: E402
from tests.support.conversation import TURNS  # noqa: E402


def instrument(agent: Agent) -> dict:
    """Wrap the hand-offs we time; returns the dict the wrappers fill."""
    marks: dict = {"read": {}, "last_read": -1, "sent": [], "final": {}, "tts": {}}
    capture_read = agent.capture.read

    def read(timeout_s):
        frame = capture_read(timeout_s)
        if frame is not None:
            marks["read"][frame.start_sample] = time.monotonic()
            marks["last_read"] = frame.start_sample
        return frame

    agent.capture.read = read
    pending: dict[int, list[float]] = {}

    def route(event, original=agent._route_segment_event):
        frame = getattr(event, "frame", None)
        if frame is not None:  # pre-roll chunks are old by design: only live frames are timed
            live = frame.start_sample + 160 == marks["last_read"]
            pending.setdefault(event.utterance_id, []).append(marks["read"][marks["last_read"]] if live else None)
        original(event)

    def timed(session_audio):
        return lambda utterance, pcm: send_audio(session_audio, utterance, pcm)

    def send_audio(session_audio, utterance, pcm):
        messages = session_audio(utterance, pcm)  # written right after, by the uplink thread
        queue = pending.get(utterance.id)
        if queue and utterance.attempts == 1:
            read_at = queue.pop(0)
            if read_at is not None:
                marks["sent"].append(time.monotonic() - read_at)
        return messages

    agent._route_segment_event = route
    uplinks = getattr(agent.uplink, "uplinks", {None: agent.uplink})  # a conversation has one per language
    for uplink in uplinks.values():
        uplink.session.audio = timed(uplink.session.audio)
    console_final, speaker_play = agent.console.final, agent.speaker.play
    agent.console.final = lambda e: (marks["final"].setdefault(e.utterance_id, (time.monotonic(), e.start_sample)),
                                     console_final(e))
    agent.speaker.play = lambda s: (marks["tts"].setdefault(s.utterance_id, time.monotonic()), speaker_play(s))
    return marks


def run_instrumented(work: Path, config_text: str, scene, timeout_s: float) -> tuple[dict, list[float]]:
    """The real agent on the scene, quiet, until drained: the marks and each utterance's true end (monotonic s)."""
    (work / "agent.yaml").write_text(config_text)
    agent = Agent(load_agent_config(work / "agent.yaml"))
    marks = instrument(agent)
    agent.console.config = type(agent.console.config)(enabled=False)
    agent.start()
    agent.wait_until_drained(timeout_s=timeout_s)
    agent.close()
    first_read = marks["read"][0] - 320 / 16000  # frame 0 is handed over once its 20 ms have been captured
    return marks, [first_read + end / 16000 for _, end in scene.utterances]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["gateway", "azure"], default="gateway")
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, help="default bench/results/e2e.json (e2e-azure.json for azure)")
    parser.add_argument("--conversation", action="store_true", help="two seats, two languages (see above)")
    parser.add_argument("--quick", action="store_true", help="--conversation: one seed per cell instead of three")
    parser.add_argument("--routing-only", action="store_true",
                        help="--conversation: the routing grid only, without the gateway latency run")
    args = parser.parse_args()
    if args.conversation:
        return conversation_main(args)
    work = Path("/tmp/parley-bench-e2e")
    scene_path, scene = make_scene(work, args.shared_data if args.shared_data.is_dir() else None)
    with GatewayThread() as gw:
        baseline = stream_once(gw.base_url, scene.mixture[:, 0], scene.utterances)
        text = demo_config_text(scene_path, gw.base_url, work, realtime=True).replace(
            "backend: gateway", f"backend: {args.backend}")
        if args.backend == "azure":
            text = text.replace(f'"{gw.base_url}"', f'"{gw.base_url}/speech/translation/cognitiveservices/v1"')
        marks, ends = run_instrumented(work, text, scene, timeout_s=120)
    finals, tts = [], []
    for utterance_id, (at, start_sample) in sorted(marks["final"].items()):
        truth = next((i for i, (a, b) in enumerate(scene.utterances) if start_sample < b), None)
        if truth is None:
            continue  # a false segment: no speech end to measure from
        finals.append(1000 * (at - ends[truth]))
        if utterance_id in marks["tts"]:
            tts.append(1000 * (marks["tts"][utterance_id] - ends[truth]))
    sent_ms = np.array(marks["sent"]) * 1000
    report = {
        "when": datetime.now(timezone.utc).isoformat(), "backend": args.backend, "utterances": len(scene.utterances),
        "end_to_final_ms": finals, "end_to_tts_ms": tts,
        "baseline_end_to_final_ms": baseline,
        "audio_to_socket_ms": {"p50": float(np.percentile(sent_ms, 50)), "p99": float(np.percentile(sent_ms, 99)),
                               "frames": int(sent_ms.size)},
    }
    print(f"backend {args.backend}, {len(scene.utterances)} utterances of the demo scene, real-time capture")
    print(f"{'':28}{'agent':>10}{'bare client':>13}{'ratio':>7}")
    agent_final, base_final = float(np.median(finals)), float(np.median(baseline))
    print(f"{'end of speech -> final':28}{agent_final:>8.0f}ms{base_final:>11.0f}ms{agent_final / base_final:>7.2f}")
    print(f"{'end of speech -> first TTS':28}{float(np.median(tts)):>8.0f}ms")
    a2s = report["audio_to_socket_ms"]
    print(f"{'audio -> socket (p50/p99)':28}{a2s['p50']:>6.1f}/{a2s['p99']:.1f} ms over {a2s['frames']} frames (one frame = 20 ms)")
    args.out = args.out or REPO / "bench" / "results" / ("e2e.json" if args.backend == "gateway" else "e2e-azure.json")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")
    return 0



SEPARATIONS_DEG = (30, 60, 90, 120, 180)
FIRST_SEATS_DEG = (0.0, 45.0, 100.0)  # where talker A sits; B sits SEPARATION further round


BENCH_TURNS = TURNS + (("en-us", "Yes, okay."), ("es", "Sí, claro."))  # short replies: where language is weakest
PARTY_LANGUAGE = {"A": "en-US", "B": "es-ES"}  # route_conversation's parties


class LanguageJudge:
    """What route_by language and both would decide, from the gateway's own identification code run on
    each routed utterance's beamformed audio (Whisper base, one worker, candidates en/es)."""

    def __init__(self):
        from gateway.engines.whisper_asr import WhisperRecognizer
        from gateway.engines.whisper_models import resolve_model

        self._whisper = WhisperRecognizer(1)
        self._detector = self._whisper.open_detector(str(resolve_model("base")), ("en", "es"))

    def parties(self, pcm: bytes, seat_party: str | None) -> tuple[str, str, float]:
        """(party by language, party by both, p(es)) for one utterance."""
        from gateway.engines.language_id import choose_language

        found = self._detector.probabilities(pcm)
        probabilities = {"en-US": found["en"], "es-ES": found["es"]}
        by_party = {language: party for party, language in PARTY_LANGUAGE.items()}
        language = choose_language(probabilities, None, len(pcm) / 32000).language
        both = choose_language(probabilities, PARTY_LANGUAGE.get(seat_party), len(pcm) / 32000).language
        return by_party[language], by_party[both], found["es"]

    def close(self) -> None:
        self._detector.close()
        self._whisper.close()


def routing_grid(args) -> list[dict]:
    from agent.hardware import load_array_profile
    from tests.support.conversation import route_conversation, speech_for

    geometry = load_array_profile("respeaker-4mic-hat")
    speech = speech_for(BENCH_TURNS)
    noise_dir = args.shared_data / "noise" if (args.shared_data / "noise").is_dir() else None
    judge = LanguageJudge()
    rows = []
    try:
        for separation in SEPARATIONS_DEG:
            for rt60 in (0.3, 0.6):
                for snr in (10.0, 5.0):
                    right = {"direction": 0, "language": 0, "both": 0}
                    short_right = dict.fromkeys(right, 0)
                    guessed = total = extra = 0
                    held_ms, heard = [], []
                    for seed, first in enumerate(FIRST_SEATS_DEG[:1] if args.quick else FIRST_SEATS_DEG):
                        routed = route_conversation(geometry, first, (first + separation) % 360, rt60, snr, seed=seed,
                                                    noise_dir=noise_dir, turns=BENCH_TURNS, speech=speech)
                        total += len(BENCH_TURNS)
                        for turn, (decision, truth, pcm) in enumerate(zip(routed.decisions, routed.truth, routed.audio)):
                            by_language, by_both, p_spanish = judge.parties(pcm, decision.party)
                            heard.append({"truth": truth, "seat": decision.party, "audio_s": round(len(pcm) / 32000, 2),
                                          "p_es": round(p_spanish, 4)})
                            for mode, party in (("direction", decision.party), ("language", by_language), ("both", by_both)):
                                right[mode] += party == truth
                                short_right[mode] += party == truth and turn >= len(TURNS)
                        guessed += sum(d.first_guess == t for d, t in zip(routed.decisions, routed.truth))
                        held_ms += [d.held_ms for d in routed.decisions]
                        extra += abs(len(routed.decisions) - len(BENCH_TURNS))
                    shorts = total // len(BENCH_TURNS) * (len(BENCH_TURNS) - len(TURNS))
                    rows.append({"separation_deg": separation, "rt60_s": rt60, "snr_db": snr, "utterances": total,
                                 "routed_right": right["direction"], "accuracy": right["direction"] / total,
                                 "language_right": right["language"], "both_right": right["both"],
                                 "short_replies": shorts, "short_right": short_right, "first_guess_right": guessed,
                                 "held_ms_median": float(np.median(held_ms)), "held_ms_max": float(max(held_ms)),
                                 "segmentation_mismatch": extra, "utterances_heard": heard})
                    cells = "".join(f"{right[m]:>6}/{total:<3}{short_right[m]:>3}/{shorts:<2}" for m in right)
                    print(f"{separation:>5}°{rt60:>5.1f} s{snr:>4.0f} dB{cells}{np.median(held_ms):>6.0f}"
                          f"{max(held_ms):>6.0f}{extra:>5}", flush=True)
    finally:
        judge.close()
    return rows


def conversation_main(args) -> int:
    print("right per route_by (all utterances, then the short replies among them); audio held by direction")
    print(f"{'apart':>6}{'RT60':>7}{'SNR':>6}{'direction':>15}{'language':>15}{'both':>15}{'held ms med/max':>16}{'seg±':>5}")
    rows = routing_grid(args)
    if args.routing_only:
        return write_report(args, {"when": datetime.now(timezone.utc).isoformat(), "routing": rows},
                            "e2e-conversation-routing.json")
    work = Path("/tmp/parley-bench-e2e-conversation")
    scene_path, scene = make_scene(work, args.shared_data if args.shared_data.is_dir() else None,
                                   lines=CONVERSATION_LINES, gap_s=CONVERSATION_GAP_S)
    print(f"\n{'route_by':11}{'direction':11}{'end -> final':>14}{'end -> TTS':>12}  (median over the demo's turns, real time)")
    latency = {route_by: demo_latency(work, scene_path, scene, route_by) for route_by in ROUTE_BY}
    return write_report(args, {"when": datetime.now(timezone.utc).isoformat(), "routing": rows, "latency": latency},
                        "e2e-conversation.json")


ROUTE_BY = ("direction", "language", "both")


def demo_latency(work: Path, scene_path: Path, scene, route_by: str) -> dict:
    """The demo's two-seat scene through the real agent and gateway: end of speech -> final and -> first
    TTS byte, per translation direction."""
    with GatewayThread() as gw:
        text = demo_config_text(scene_path, gw.base_url, work, True, conversation=True, route_by=route_by)
        marks, ends = run_instrumented(work, text, scene, timeout_s=180)
    latency: dict = {}
    for utterance_id, (at, start_sample) in sorted(marks["final"].items()):
        truth = next((i for i, (a, b) in enumerate(scene.utterances) if start_sample < b), None)
        if truth is None:
            continue
        direction = "en->es" if CONVERSATION_LINES[truth].voice.startswith("en") else "es->en"
        entry = latency.setdefault(direction, {"end_to_final_ms": [], "end_to_tts_ms": []})
        entry["end_to_final_ms"].append(1000 * (at - ends[truth]))
        if utterance_id in marks["tts"]:
            entry["end_to_tts_ms"].append(1000 * (marks["tts"][utterance_id] - ends[truth]))
    for direction, entry in sorted(latency.items()):
        tts = f"{np.median(entry['end_to_tts_ms']):>10.0f}ms" if entry["end_to_tts_ms"] else f"{'-':>12}"
        print(f"{route_by:11}{direction:11}{np.median(entry['end_to_final_ms']):>12.0f}ms{tts}", flush=True)
    return latency


def write_report(args, report: dict, default_name: str) -> int:
    args.out = args.out or REPO / "bench" / "results" / default_name
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
