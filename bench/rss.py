"""What holds the agent's memory: steady RSS of the real agent, and what each part costs.

    python bench/rss.py [--seconds 60] [--quick]

The agent runs in a child process per variant (so each RSS is its own), on the demo scene looped
in real time, translating through one real gateway that runs in this (parent) process. Each child
samples VmRSS every second and, at the end, splits it by mapping (/proc/self/smaps): onnxruntime,
numpy/OpenBLAS, the Python binary and other libraries, and heap/anonymous memory. A separate
child measures the import stages (python, numpy, agent.daemon, an onnxruntime session). Variants,
side by side on the same scene: silero (the default), webrtc (no onnxruntime), and silero with
``MALLOC_ARENA_MAX=2`` (what the systemd unit sets: glibc otherwise gives each of the agent's
threads its own malloc arena). Prints a table; writes bench/results/rss.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

VARIANTS = {  # name -> (VAD engine, extra environment)
    "silero": ("silero", {}),
    "webrtc": ("webrtc", {}),
    "silero, MALLOC_ARENA_MAX=2": ("silero", {"MALLOC_ARENA_MAX": "2"}),
}


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def rss_by_mapping() -> dict[str, float]:
    """Resident MB per kind of mapping."""
    totals: dict[str, float] = defaultdict(float)
    kind = "heap/anon"
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            first = line.split(maxsplit=1)[0]
            if "-" in first and not first.endswith(":"):  # a mapping header: address range ... [path]
                parts = line.split()
                path = parts[5] if len(parts) > 5 else ""
                kind = _kind(path)
            elif first == "Rss:":
                totals[kind] += int(line.split()[1]) / 1024
    return dict(totals)


def _kind(path: str) -> str:
    if not path or path.startswith("["):
        return "heap/anon"
    if "onnxruntime" in path:
        return "onnxruntime"
    if "numpy" in path or "openblas" in path.lower():
        return "numpy/OpenBLAS"
    if "python3" in path or "libpython" in path:
        return "python binary"
    return "other libraries"


def child_stages() -> dict:
    stages = {"python": rss_mb()}
    import numpy  # noqa: F401

    stages["+ numpy"] = rss_mb()
    import agent.daemon  # noqa: F401

    stages["+ agent.daemon imports"] = rss_mb()
    from parley_common.vad.engines import VadConfig, make_vad

    make_vad(VadConfig(engine="silero"), 16000)
    stages["+ silero onnxruntime session"] = rss_mb()
    return stages


def child_agent(config_path: str, seconds: float) -> dict:
    from agent.config.schema import load_agent_config
    from agent.daemon import Agent
    from parley_common.logsetup import configure_logging

    configure_logging("error")
    agent = Agent(load_agent_config(config_path))
    agent.start()
    samples = []
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        time.sleep(1.0)
        samples.append(round(rss_mb(), 1))
    by_mapping = rss_by_mapping()
    threads = len(os.listdir("/proc/self/task"))
    finals = agent.console.finals_shown
    agent.close(timeout_s=3.0)
    half = samples[len(samples) // 2:]
    return {"rss_mb": samples, "steady_rss_mb": round(sum(half) / len(half), 1),
            "slope_mb_per_min": round((half[-1] - half[0]) / max(1, len(half) - 1) * 60, 2),
            "by_mapping_mb": {k: round(v, 1) for k, v in sorted(by_mapping.items())},
            "threads": threads, "finals": finals}


def run_child(args: list[str], env_extra: dict) -> dict:
    env = dict(os.environ, **env_extra)
    env.pop("PARLEY_PIN_FACTORY", None)
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT=")]
    if proc.returncode or not lines:
        raise RuntimeError(f"child {args} failed:\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT="):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long each variant runs")
    parser.add_argument("--quick", action="store_true", help="20 s per variant (CI)")
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--child", choices=["stages", "agent"], help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "stages":
        print("RESULT=" + json.dumps(child_stages()))
        return
    if args.child == "agent":
        print("RESULT=" + json.dumps(child_agent(args.config, args.seconds)))
        return

    from agent.demo import demo_config_text, make_scene
    from gateway.server import GatewayThread

    seconds = 20.0 if args.quick else args.seconds
    work = Path("/tmp/parley-bench-rss")
    work.mkdir(parents=True, exist_ok=True)
    scene_path, _ = make_scene(work, args.shared_data if args.shared_data.is_dir() else None)
    results = {"stages_mb": run_child(["--child", "stages"], {}), "variants": {}}
    with GatewayThread() as gateway:
        for name, (engine, env_extra) in VARIANTS.items():
            text = demo_config_text(scene_path, gateway.base_url, work, realtime=True)
            text = text.replace("loop: false", "loop: true") + f"frontend:\n  vad:\n    engine: {engine}\n"
            text = text.replace("backend: log", "backend: none")
            config_path = work / f"agent-{engine}.yaml"
            config_path.write_text(text)
            results["variants"][name] = run_child(
                ["--child", "agent", "--config", str(config_path), "--seconds", str(seconds)], env_extra)

    print("import stages (VmRSS MB): " + ", ".join(f"{k} {v:.1f}" for k, v in results["stages_mb"].items()))
    kinds = sorted({k for v in results["variants"].values() for k in v["by_mapping_mb"]})
    print(f"\n| variant | steady RSS MB | slope MB/min | threads | finals | {' | '.join(kinds)} |")
    print("|---|---|---|---|---|" + "---|" * len(kinds))
    for name, v in results["variants"].items():
        print(f"| {name} | {v['steady_rss_mb']:.1f} | {v['slope_mb_per_min']:+.2f} | {v['threads']} | {v['finals']} | "
              + " | ".join(f"{v['by_mapping_mb'].get(k, 0.0):.1f}" for k in kinds) + " |")
    results.update(seconds_per_variant=seconds, date=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    out = REPO / "bench" / "results" / "rss.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
