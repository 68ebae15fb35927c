"""Gateway benchmark: recognition speed, warm vs spawned Apertium, protocol latencies, concurrency.

    python bench/gateway.py            # about a minute on 2 cores
    python bench/gateway.py --quick    # fewer sentences and session counts

Latencies are measured through the real Translator v1 endpoint with audio sent in real time:
speech onset -> first partial, end of audio -> final, end of audio -> first TTS byte. Concurrency
runs N real-time sessions at once; a level is sustained while the p95 end->final latency stays
under twice the single-session median.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import websocket

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from parley_common.protocols.wav import streaming_header  # noqa: E402
from gateway.config import GatewayConfig, LimitsConfig, RecognitionConfig  # noqa: E402
from gateway.engines.recognizers import Recognizers  # noqa: E402
from gateway.server import GatewayThread  # noqa: E402
from gateway_bench_client import send_realtime  # noqa: E402
from tests.support.speech import english_samples  # noqa: E402


def recognition_rtf(samples) -> float:
    """Wall seconds per audio second of the default English recognizer through one idle worker process
    (its CPU is not ours to clock; bench/asr.py compares the engines)."""
    recognizer = Recognizers(RecognitionConfig(processes=1))
    recognizer.warm_up()
    stream = recognizer.open_stream("en-US")
    busy, audio_s = 0.0, 0.0
    for _, pcm in samples:
        t0 = time.perf_counter()
        for i in range(0, len(pcm), 1600):
            stream.feed(pcm[i:i + 1600].tobytes())
        stream.finish()
        busy += time.perf_counter() - t0
        audio_s += len(pcm) / 16000
    stream.close()
    recognizer.close()
    return busy / audio_s


def apertium_warm_vs_spawn(gw, texts) -> tuple[float, float]:
    translator = gw.gateway.engines.translator
    translator.translate("warm up", "en", "es")
    t0 = time.perf_counter()
    for text in texts:
        translator.translate(text, "en", "es")
    warm_ms = (time.perf_counter() - t0) / len(texts) * 1000
    t0 = time.perf_counter()
    for text in texts:
        subprocess.run(["apertium", "eng-spa"], input=text.encode(), capture_output=True, check=True)
    spawn_ms = (time.perf_counter() - t0) / len(texts) * 1000
    return warm_ms, spawn_ms


def one_session(url: str, pcm: np.ndarray, out: dict) -> None:
    ws = websocket.create_connection(url, timeout=60)
    ws.send_binary(streaming_header())
    audio = np.concatenate([pcm, np.zeros(16000, np.int16)])
    timings = {}

    def reader():
        while True:
            try:
                opcode, data = ws.recv_data()
            except Exception:
                return
            now = time.monotonic()
            if opcode == websocket.ABNF.OPCODE_TEXT:
                kind = json.loads(data)["type"]
                timings.setdefault(kind, now)
            else:
                timings.setdefault("tts", now)
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    start = send_realtime(ws, audio)
    thread.join(30)
    ws.close()
    speech_end = start + len(pcm) / 16000
    speech = np.flatnonzero(np.abs(pcm) > 0.1 * np.abs(pcm).max())
    onset = start + speech[0] / 16000 if speech.size else start
    out.update(first_partial_ms=1000 * (timings.get("partial", np.nan) - onset),
               final_ms=1000 * (timings.get("final", np.nan) - speech_end),
               tts_ms=1000 * (timings.get("tts", np.nan) - speech_end))


def run_sessions(url: str, samples, count: int) -> list[dict]:
    results = [dict() for _ in range(count)]
    threads = [threading.Thread(target=one_session, args=(url, samples[i % len(samples)][1], results[i]))
               for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gateway.json")
    args = parser.parse_args()
    samples = english_samples(args.shared_data if args.shared_data.is_dir() else None, limit=7)
    if args.quick:
        samples = samples[:2]
    levels = (1, 2, 4) if args.quick else (1, 2, 4, 6, 8)
    report: dict = {"when": datetime.now(timezone.utc).isoformat()}
    report["recognition_rtf"] = recognition_rtf(samples)
    with GatewayThread(GatewayConfig(port=0, limits=LimitsConfig(max_sessions=16))) as gw:
        warm_ms, spawn_ms = apertium_warm_vs_spawn(gw, [text for text, _ in samples])
        report.update(apertium_warm_ms=warm_ms, apertium_spawn_ms=spawn_ms)
        url = f"{gw.base_url}/speech/translate?api-version=1.0&from=en-US&to=es&to=ca&features=partial,texttospeech"
        single = run_sessions(url, samples, 1) + run_sessions(url, samples[1:], 1)
        baseline_final_ms = float(np.nanmedian([r["final_ms"] for r in single]))
        report["single"] = {k: float(np.nanmedian([r[k] for r in single])) for k in single[0]}
        report["concurrency"] = []
        sustained, still_ok = 0, True
        for count in levels:
            rows = run_sessions(url, samples, count)
            p95 = float(np.nanpercentile([r["final_ms"] for r in rows], 95))
            ok = p95 <= 2 * baseline_final_ms and all(np.isfinite(r["final_ms"]) for r in rows)
            still_ok = still_ok and ok
            sustained = count if still_ok else sustained
            report["concurrency"].append({"sessions": count, "final_p95_ms": p95, "sustained": ok})
    report["max_sustained_sessions"] = sustained
    print(f"recognition RTF (Whisper tiny.en, one worker process, wall)   {report['recognition_rtf']:.3f}")
    print(f"apertium per sentence: warm {warm_ms:.1f} ms vs spawn {spawn_ms:.1f} ms  ({spawn_ms / warm_ms:.0f}x)")
    s = report["single"]
    print(f"one session: onset->first partial {s['first_partial_ms']:.0f} ms, end->final {s['final_ms']:.0f} ms, "
          f"end->first TTS byte {s['tts_ms']:.0f} ms")
    print("sessions  final p95 ms  sustained (p95 <= 2x single median)")
    for row in report["concurrency"]:
        print(f"{row['sessions']:>8}  {row['final_p95_ms']:>12.0f}  {row['sustained']}")
    print(f"max sustained real-time sessions on this machine: {sustained}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
