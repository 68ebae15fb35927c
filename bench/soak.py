"""Soak: the real agent on a looped real-time recording against the real gateway, for bounded minutes.

    python bench/soak.py [--minutes 10] [--quick]

Every few seconds it samples the agent's RSS, threads, open fds and CPU time. It reports the RSS
slope after warm-up (MB per hour; a leak shows as a steady climb), the ranges of threads and fds
(which must stay flat), CPU seconds per second of audio, the finals written against the sentences
spoken (and how many were empty), and each thread's — each stage's — share of the CPU. The gateway
and the scene simulation run in their own processes, so every number is the agent's alone.
``--quick`` (CI) soaks 30 s.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

from agent.config.schema import load_agent_config  # noqa: E402
from agent.daemon import Agent  # noqa: E402
from parley_common.logsetup import configure_logging  # noqa: E402
from agent.demo import demo_config_text  # noqa: E402
from agent.outputs.transcript import read_transcript  # noqa: E402

SAMPLE_EVERY_S = 2.0
WARMUP_SHARE = 0.2  # the first fifth (imports, model load, first allocations) is not a leak
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gateway(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "--port", str(port), "--log-level", "warning"],
                            cwd=REPO)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the gateway did not start within 120 s")


def simulate(work: Path, shared_data: Path | None) -> tuple[Path, float, list[float]]:
    """The demo scene, made in a child process so its memory is not counted as the agent's.
    Returns the WAV, its length and each sentence's start (s)."""
    code = ("import json, sys; from pathlib import Path; from agent.demo import make_scene; "
            "p, s = make_scene(Path(sys.argv[1]), Path(sys.argv[2]) if sys.argv[2] else None); "
            "print(json.dumps([str(p), s.mixture.shape[0] / 16000, [a / 16000 for a, _ in s.utterances]]))")
    out = subprocess.run([sys.executable, "-c", code, str(work), str(shared_data or "")], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout
    path, length_s, starts_s = json.loads(out.strip().splitlines()[-1])
    return Path(path), length_s, starts_s


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds per live thread of this process, by thread name (``main`` for the main thread)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        except OSError:
            continue  # ended while we looked
        fields = stat[stat.rindex(")") + 2:].split()
        name = names.get(int(tid), "other (native)")
        name = "main" if name == "MainThread" else name
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / TICKS_PER_S
    return out


def sample(agent: Agent, started: float) -> dict:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    times = os.times()
    return {"t_s": time.monotonic() - started, "rss_mb": int(status["VmRSS"].split()[0]) / 1024,
            "threads": int(status["Threads"]), "fds": len(os.listdir("/proc/self/fd")),
            "cpu_s": times.user + times.system, "frames": agent.counters.frames}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="30 s, for CI")
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, help="default bench/results/soak.json")
    args = parser.parse_args()
    duration_s = 30.0 if args.quick else 60.0 * args.minutes
    configure_logging("warning")
    work = Path(f"/tmp/parley-bench-soak-{os.getpid()}")
    work.mkdir(parents=True, exist_ok=True)
    scene_path, scene_s, starts_s = simulate(work, args.shared_data if args.shared_data.is_dir() else None)
    port = free_port()
    gateway = start_gateway(port)
    try:
        text = demo_config_text(scene_path, f"ws://127.0.0.1:{port}", work, realtime=True)
        (work / "agent.yaml").write_text(text.replace("loop: false", "loop: true").replace(
            "backend: log", "backend: none"))
        config = load_agent_config(work / "agent.yaml")
        agent = Agent(config)
        agent.console.config = type(agent.console.config)(enabled=False)
        started = time.monotonic()
        agent.start()
        samples = [sample(agent, started)]
        stages_at_start = thread_cpu_s()
        while time.monotonic() - started < duration_s:
            time.sleep(SAMPLE_EVERY_S)
            samples.append(sample(agent, started))
        stages = {name: cpu - stages_at_start.get(name, 0.0) for name, cpu in thread_cpu_s().items()}
        audio_s = agent.counters.frames * config.capture.frame_ms / 1000
        agent.close(timeout_s=5.0)
    finally:
        gateway.terminate()
        gateway.wait(10)
    loops, into_loop = divmod(audio_s, scene_s)
    spoken = int(loops) * len(starts_s) + sum(start <= into_loop for start in starts_s)  # begun, as the stop ends one
    records = read_transcript(work / "transcript.jsonl")
    settled = [s for s in samples if s["t_s"] >= WARMUP_SHARE * duration_s]
    slope_mb_per_h = float(np.polyfit([s["t_s"] for s in settled], [s["rss_mb"] for s in settled], 1)[0] * 3600)
    cpu_total_s = sum(stages.values())
    report = {
        "when": datetime.now(timezone.utc).isoformat(), "duration_s": round(duration_s), "audio_s": round(audio_s, 1),
        "rss_mb": {"start": samples[0]["rss_mb"], "end": samples[-1]["rss_mb"], "max": max(s["rss_mb"] for s in samples),
                   "slope_after_warmup_mb_per_h": round(slope_mb_per_h, 1)},
        "threads": {"min": min(s["threads"] for s in settled), "max": max(s["threads"] for s in settled)},
        "fds": {"min": min(s["fds"] for s in settled), "max": max(s["fds"] for s in settled)},
        "cpu_s_per_audio_s": round((samples[-1]["cpu_s"] - samples[0]["cpu_s"]) / max(audio_s, 1e-9), 4),
        "sentences_spoken": spoken, "finals": len(records), "empty_finals": sum(not r["source"] for r in records),
        "dropped_utterances": agent.uplink.dropped_utterances,
        "cpu_share_by_stage": {name: round(cpu / cpu_total_s, 3) for name, cpu in
                               sorted(stages.items(), key=lambda item: -item[1])},
        "samples": samples,
    }
    print(f"soak: {duration_s:.0f} s, {audio_s:.0f} s of audio looped in real time against the real gateway")
    print(f"  RSS            {report['rss_mb']['start']:.0f} -> {report['rss_mb']['end']:.0f} MB "
          f"(max {report['rss_mb']['max']:.0f}); slope after warm-up {slope_mb_per_h:+.1f} MB/h")
    print(f"  threads        {report['threads']['min']}..{report['threads']['max']}")
    print(f"  open fds       {report['fds']['min']}..{report['fds']['max']}")
    print(f"  CPU            {100 * report['cpu_s_per_audio_s']:.1f} % of one core per audio second")
    print(f"  finals         {len(records)} of {spoken} sentences spoken ({report['empty_finals']} empty, "
          f"{report['dropped_utterances']} dropped)")
    print("  CPU by stage   " + ", ".join(f"{name} {100 * share:.0f} %" for name, share in
                                          report["cpu_share_by_stage"].items() if share >= 0.01))
    out = args.out or REPO / "bench" / "results" / "soak.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
