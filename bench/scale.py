"""Sessions sustained in real time through HAProxy with 1, 2 and 3 gateways, side by side in one
run, and the latency the balancer adds.

Each gateway is its own process (one recognizer worker) behind real HAProxy on the shipped
``config/haproxy.cfg`` (TLS). A level of N sessions is sustained when every session's every
utterance gets its final and the p95 end-of-utterance -> final latency stays within
``--slack`` x that of one session alone (measured once: one gateway, through the balancer).
Levels rise until one is not sustained. The clients are the bench's bare Translator v1 clients
(real-time 20 ms chunks, partials, two targets), started within one utterance of each other.

Only 2 cores: three gateways cannot use more than two, so the 3-gateway ratio measures how far
the balancer spreads a fixed CPU, not a third machine. The machine is shared with other work;
compare the ratios of one run, not absolute figures across runs.

    .venv/bin/python bench/scale.py --quick          # ~3 min
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import websocket

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from gateway_bench_client import stream_once  # noqa: E402
from tests.support.balancer import Balancer, GatewayProcess, gateway_yaml  # noqa: E402
from tests.support.speech import english_samples  # noqa: E402

V1_QUERY = "/speech/translate?api-version=1.0&from=en-US&to=es"


def client_audio(samples, index: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Two utterances with a second of silence around each: the audio and where each utterance is."""
    gap = np.zeros(16000, np.int16)
    parts, spans, position = [gap], [], len(gap)
    for _, pcm in (samples[index % len(samples)], samples[(index + 1) % len(samples)]):
        spans.append((position, position + len(pcm)))
        parts += [pcm, gap]
        position += len(pcm) + len(gap)
    return np.concatenate(parts), spans


def run_level(base_url: str, samples, sessions: int, stagger_s: float) -> list[list[float]]:
    """``sessions`` concurrent clients; per client the latency (ms) of each final it got."""
    latencies: list = [None] * sessions
    rng = random.Random(sessions)

    def client(index: int) -> None:
        time.sleep(rng.uniform(0, stagger_s))
        audio, spans = client_audio(samples, index)
        try:
            latencies[index] = stream_once(base_url, audio, spans)
        except (OSError, websocket.WebSocketException) as exc:
            latencies[index] = exc

    threads = [threading.Thread(target=client, args=(i,)) for i in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    return [lat if isinstance(lat, list) else [] for lat in latencies]


def alone_p95_ms(base_url: str, samples, runs: int = 3) -> float:
    """The p95 final latency of one session by itself: the baseline every configuration is held to."""
    alone = [ms for _ in range(runs) for ms in run_level(base_url, samples, 1, 0.0)[0]]
    return float(np.percentile(alone, 95)) if alone else float("nan")


def sustained(base_url: str, samples, levels, slack: float, stagger_s: float, baseline_ms: float) -> dict:
    rows, best = [], 0
    for sessions in levels:
        per_client = run_level(base_url, samples, sessions, stagger_s)
        complete = all(len(lat) == 2 for lat in per_client)
        flat = [ms for lat in per_client for ms in lat]
        p95_ms = float(np.percentile(flat, 95)) if flat else float("nan")
        ok = complete and p95_ms <= slack * baseline_ms
        rows.append({"sessions": sessions, "p95_final_ms": round(p95_ms), "all_finals": complete, "sustained": ok})
        print(f"  {sessions:3d} sessions: p95 {p95_ms:7.0f} ms, all finals {complete}, sustained {ok}", flush=True)
        if not ok:
            break
        best = sessions
    return {"levels": rows, "sustained_sessions": best}


def message_round_trip_ms(url: str) -> tuple[float, float]:
    """(connect + upgrade ms, one message there and the answer back ms): a text message on the v1
    path is answered at once with close 1003, so the second is the pure path, no recognizer in it."""
    started_s = time.monotonic()
    ws = websocket.create_connection(url + V1_QUERY, timeout=30)
    connected_s = time.monotonic()
    ws.send("ping")
    while ws.recv_data(control_frame=True)[0] != websocket.ABNF.OPCODE_CLOSE:
        pass
    answered_s = time.monotonic()
    ws.shutdown()
    return 1000 * (connected_s - started_s), 1000 * (answered_s - connected_s)


def balancer_latency(direct_url: str, balanced_url: str, samples, rounds: int) -> dict:
    """Alternating direct (plain ws) and through HAProxy (TLS): connect, message round trip, final."""
    out = {name: {"connect_ms": [], "message_rtt_ms": [], "final_ms": []} for name in ("direct", "haproxy")}
    for round_index in range(max(rounds, 20)):
        for name, url in (("direct", direct_url), ("haproxy", balanced_url)):
            connect_ms, rtt_ms = message_round_trip_ms(url)
            out[name]["connect_ms"].append(connect_ms)
            out[name]["message_rtt_ms"].append(rtt_ms)
            if round_index < rounds:
                out[name]["final_ms"] += run_level(url, samples, 1, 0.0)[0]
    summary: dict = {name: {k: round(float(np.median(v)), 1) for k, v in d.items()} for name, d in out.items()}
    for key in ("connect_ms", "message_rtt_ms", "final_ms"):
        summary[f"added_{key}"] = round(summary["haproxy"][key] - summary["direct"][key], 1)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="levels up to 8 sessions and 3 latency rounds")
    parser.add_argument("--gateways", type=int, default=3)
    parser.add_argument("--slack", type=float, default=2.0, help="sustained: p95 within this x one session's")
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "scale.json")
    args = parser.parse_args()
    samples = english_samples(args.shared_data if args.shared_data.is_dir() else None, limit=7)
    levels = (1, 2, 3, 4, 6, 8) if args.quick else (1, 2, 3, 4, 6, 8, 10, 12, 16, 20)
    stagger_s = float(np.mean([len(pcm) for _, pcm in samples])) / 16000
    report: dict = {"when": datetime.now(timezone.utc).isoformat(), "cores": os.cpu_count(),
                    "engine": "pocketsphinx, 1 worker per gateway", "slack": args.slack,
                    "load_average_at_start": os.getloadavg()[0], "by_gateways": {}}
    directory = Path(tempfile.mkdtemp(prefix="parley-scale-"))
    gateways = [GatewayProcess(directory, f"gw{i + 1}", gateway_yaml(max_sessions=32, idle_timeout_s=60.0))
                for i in range(args.gateways)]
    try:
        for gateway in gateways:
            gateway.start()
        for gateway in gateways:
            gateway.wait_ready(120)
        for count in range(1, args.gateways + 1):
            subset = gateways[:count]
            (directory / f"lb{count}").mkdir()
            balancer = Balancer(directory / f"lb{count}", {g.name: g.port for g in subset})
            os.environ["WEBSOCKET_CLIENT_CA_BUNDLE"] = str(balancer.pem)
            balancer.start()
            try:
                balancer.wait_up({g.name for g in subset})
                if count == 1:
                    report["balancer_latency"] = balancer_latency(
                        f"ws://127.0.0.1:{subset[0].port}", balancer.url, samples, 3 if args.quick else 6)
                    report["alone_p95_final_ms"] = round(alone_p95_ms(balancer.url, samples))
                print(f"{count} gateway(s) behind HAProxy:", flush=True)
                report["by_gateways"][count] = sustained(balancer.url, samples, levels, args.slack, stagger_s,
                                                         report["alone_p95_final_ms"])
            finally:
                balancer.stop()
    finally:
        for gateway in gateways:
            gateway.stop()
    one = report["by_gateways"][1]["sustained_sessions"] or float("nan")
    for row in report["by_gateways"].values():
        row["ratio_to_one_gateway"] = round(row["sustained_sessions"] / one, 2)
    report["load_average_at_end"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "by_gateways"}, indent=2))
    for count, row in report["by_gateways"].items():
        print(f"{count} gateway(s): {row['sustained_sessions']} sessions sustained "
              f"(x{row['ratio_to_one_gateway']} of one; p95 within {args.slack} x {report['alone_p95_final_ms']} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
