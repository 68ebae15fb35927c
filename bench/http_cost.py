"""What serving the captions page and metrics costs the agent, while a talker talks.

    python bench/http_cost.py [--trials 3]

(Not bench/http.py: a script directory comes first on sys.path, and that name would hide the
standard library's http package.)

Runs the real agent over the demo scene in real time, against the real gateway (a separate
process, so this process's CPU is the agent's alone), alternately with the HTTP server off and on,
``--trials`` times each, side by side in this one process. With it on, a real headless Chromium
shows the captions page (two languages) and a separate scraper process fetches /metrics and
/healthz every second (Prometheus usually scrapes every 15 s). The cost is this process's CPU time
over the run's wall time, in % of one core; the target is <= 1 % more with HTTP on. The HTTP
server thread's own CPU (from /proc) is reported too: it is the same cost without the run-to-run noise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agent.config.schema import load_agent_config  # noqa: E402
from agent.daemon import Agent  # noqa: E402
from agent.demo import demo_config_text, make_scene  # noqa: E402
from agent.outputs.http_metrics import thread_cpu_s  # noqa: E402

SCRAPER = """
import sys, time, urllib.request, urllib.error
base = sys.argv[1]
while True:
    for path in ("/metrics", "/healthz"):
        try:
            urllib.request.urlopen(base + path, timeout=5).read()
        except urllib.error.HTTPError:
            pass  # 503 is an answer too
        except OSError:
            pass
    time.sleep(1.0)
"""
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--remote-debugging-port=0"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on port {port}")


def run_once(base_text: str, work: Path, http_on: bool) -> dict:
    """One real-time pass over the scene; returns CPU % of one core for this process."""
    config = yaml.safe_load(base_text)
    config["outputs"]["leds"] = {"backend": "none"}
    port = free_port()
    config["outputs"]["http"] = {"enabled": http_on, "port": port}
    path = work / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    agent = Agent(load_agent_config(path))
    agent.console.config = type(agent.console.config)(enabled=False)
    clients: list[subprocess.Popen] = []
    agent.start()
    try:
        if http_on:
            profile = tempfile.mkdtemp(prefix="parley-bench-chromium-")
            clients.append(subprocess.Popen(
                [shutil.which("chromium"), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                 f"http://127.0.0.1:{port}/?lang=es&lang=ca"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            clients.append(subprocess.Popen([sys.executable, "-c", SCRAPER, f"http://127.0.0.1:{port}"]))
        cpu0, wall0 = time.process_time(), time.monotonic()
        agent.wait_until_drained(timeout_s=180)
        cpu_s, wall_s = time.process_time() - cpu0, time.monotonic() - wall0
        finals, pages = agent.counters.finals, agent.http.pages_connected
        http_thread_cpu_s = thread_cpu_s(agent.http.thread_native_id) if http_on else 0.0
    finally:
        for client in clients:
            client.terminate()
            client.wait(10)
        agent.close()
    return {"http": http_on, "cpu_pct_of_core": 100 * cpu_s / wall_s, "wall_s": wall_s, "finals": finals,
            "http_thread_pct_of_core": 100 * http_thread_cpu_s / wall_s,
            "pages_connected": pages}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "http.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="parley-bench-http-"))
    scene_path, scene = make_scene(work, args.shared_data if args.shared_data.is_dir() else None)
    gateway_port = free_port()
    gateway = subprocess.Popen([str(Path(sys.executable).parent / "parley-gateway"), "--port", str(gateway_port),
                                "--log-level", "warning"])
    try:
        wait_for_port(gateway_port)
        base_text = demo_config_text(scene_path, f"ws://127.0.0.1:{gateway_port}", work, realtime=True)
        runs = [run_once(base_text, work, http_on) for _ in range(args.trials) for http_on in (False, True)]
    finally:
        gateway.terminate()
        gateway.wait(10)
    off = [r["cpu_pct_of_core"] for r in runs if not r["http"]]
    on = [r["cpu_pct_of_core"] for r in runs if r["http"]]
    added = statistics.median(on) - statistics.median(off)
    print(f"agent CPU over the demo scene ({len(scene.utterances)} utterances, real time), % of one core")
    print(f"{'run':>4}{'HTTP off':>10}{'HTTP on':>10}")
    for i, (a, b) in enumerate(zip(off, on), 1):
        print(f"{i:>4}{a:>10.2f}{b:>10.2f}")
    print(f"{'med':>4}{statistics.median(off):>10.2f}{statistics.median(on):>10.2f}   added {added:+.2f} % "
          f"(target <= 1 %); ratio {statistics.median(on) / statistics.median(off):.3f}")
    report = {"when": datetime.now(timezone.utc).isoformat(), "cpus": os.cpu_count(), "runs": runs,
              "median_off_pct": statistics.median(off), "median_on_pct": statistics.median(on),
              "added_pct_of_core": added, "target_pct_of_core": 1.0}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"the HTTP server's own thread: median {statistics.median(r['http_thread_pct_of_core'] for r in runs if r['http']):.3f} % of one core")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
