"""Recognizer worker memory: after warm-up, after N concurrent sessions, after the idle release.

    python bench/gateway_memory.py --sessions 12    # about a minute on 2 cores

Workers grow with the streams they decode and do not give the memory back; the gateway replaces
them after ``limits.release_recognizers_after_s`` without sessions (5 s here). RSS in MB per
worker process, from /proc.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import websocket

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from conftest import shared_data_dir  # noqa: E402
from gateway.config import GatewayConfig, LimitsConfig  # noqa: E402
from gateway.server import GatewayThread  # noqa: E402
from parley_common.protocols.wav import streaming_header  # noqa: E402
from speech_samples import english_samples  # noqa: E402

V1 = "/speech/translate?api-version=1.0&from=en-US&to=es&features=partial"


def rss_mb(pids: list[int]) -> list[int]:
    sizes = []
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(round(int(line.split()[1]) / 1024))
    return sizes


def one_session(url: str, pcm: np.ndarray) -> None:
    ws = websocket.create_connection(url, timeout=300)
    ws.send_binary(streaming_header() + np.concatenate([pcm, np.zeros(24000, np.int16)]).astype("<i2").tobytes())
    while json.loads(ws.recv())["type"] != "final":
        pass
    ws.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=12)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gateway_memory.json")
    args = parser.parse_args()
    samples = english_samples(shared_data_dir(), limit=7)
    limits = LimitsConfig(max_sessions=args.sessions, max_sessions_per_address=args.sessions,
                          release_recognizers_after_s=5.0)
    report = {"sessions": args.sessions}
    with GatewayThread(GatewayConfig(port=0, limits=limits)) as gw:
        workers = gw.gateway.engines.recognizer.worker_pids
        report["after_warm_up_mb"] = rss_mb(workers)
        threads = [threading.Thread(target=one_session, args=(gw.base_url + V1, samples[i % len(samples)][1]))
                   for i in range(args.sessions)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        report["after_sessions_mb"] = rss_mb(workers)
        while gw.gateway.recognizer_generation == 0:
            time.sleep(0.5)
        report["after_release_mb"] = rss_mb(gw.gateway.engines.recognizer.worker_pids)
    print(f"{'worker RSS, MB':<32}" + "".join(f"{f'worker {i}':>10}" for i in range(len(workers))))
    for key, label in (("after_warm_up_mb", "after warm-up"),
                       ("after_sessions_mb", f"after {args.sessions} concurrent sessions"),
                       ("after_release_mb", "after the idle release")):
        print(f"{label:<32}" + "".join(f"{mb:>10}" for mb in report[key]))
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
