"""End-to-end latency over the demo scene: the real agent, the real gateway, real-time capture.

    python bench/e2e.py [--backend gateway|azure]

Measures, per utterance: end of speech (ground truth of the simulated scene) -> final text on the
console, and -> first TTS byte reaching the speaker; and, per audio frame, the latency the agent
adds between a frame leaving capture and its bytes going onto the socket (target: p99 <= one
frame). Baseline, side by side in the same process: a bare Translator v1 client streaming mic 0
of the same scene in real time to the same gateway, so the ratio shows what the agent adds.
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
from agent.demo import demo_config_text, make_scene  # noqa: E402
from gateway.server import GatewayThread  # noqa: E402
from gateway_bench_client import stream_once  # noqa: E402


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
    protocol_send = agent.uplink.protocol.send_audio
    pending: dict[int, list[float]] = {}

    def route(event, original=agent._route_segment_event):
        frame = getattr(event, "frame", None)
        if frame is not None:  # pre-roll chunks are old by design: only live frames are timed
            live = frame.start_sample + 160 == marks["last_read"]
            pending.setdefault(event.utterance_id, []).append(marks["read"][marks["last_read"]] if live else None)
        original(event)

    def send_audio(ws, utterance, pcm):
        protocol_send(ws, utterance, pcm)
        queue = pending.get(utterance.id)
        if queue and utterance.attempts == 1:
            read_at = queue.pop(0)
            if read_at is not None:
                marks["sent"].append(time.monotonic() - read_at)

    agent._route_segment_event = route
    agent.uplink.protocol.send_audio = send_audio
    console_final, speaker_play = agent.console.final, agent.speaker.play
    agent.console.final = lambda e: (marks["final"].setdefault(e.utterance_id, (time.monotonic(), e.start_sample)),
                                     console_final(e))
    agent.speaker.play = lambda s: (marks["tts"].setdefault(s.utterance_id, time.monotonic()), speaker_play(s))
    return marks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["gateway", "azure"], default="gateway")
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, help="default bench/results/e2e.json (e2e-azure.json for azure)")
    args = parser.parse_args()
    work = Path("/tmp/parley-bench-e2e")
    scene_path, scene = make_scene(work, args.shared_data if args.shared_data.is_dir() else None)
    with GatewayThread() as gw:
        baseline = stream_once(gw.base_url, scene.mixture[:, 0], scene.utterances)
        text = demo_config_text(scene_path, gw.base_url, work, realtime=True).replace(
            "backend: gateway", f"backend: {args.backend}")
        if args.backend == "azure":
            text = text.replace(f'"{gw.base_url}"', f'"{gw.base_url}/speech/translation/cognitiveservices/v1"')
        (work / "agent.yaml").write_text(text)
        agent = Agent(load_agent_config(work / "agent.yaml"))
        marks = instrument(agent)
        agent.console.config = type(agent.console.config)(enabled=False)
        agent.start()
        agent.wait_until_drained(timeout_s=120)
        agent.close()
    first_read = marks["read"][0] - 320 / 16000  # frame 0 is handed over once its 20 ms have been captured
    ends = [first_read + end / 16000 for _, end in scene.utterances]
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


if __name__ == "__main__":
    sys.exit(main())
