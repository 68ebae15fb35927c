"""``parley-gateway``: run the offline speech-translation server, or check its configuration."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import sys
from pathlib import Path

from parley_common import __version__
from parley_common.logsetup import configure_logging
from parley_common.typedyaml import ConfigError, load_yaml_config
from parley_common.sdnotify import SystemdNotifier
from gateway.checks import environment_problems
from gateway.config import GatewayConfig
from gateway.engines.whisper_models import ModelError

EXIT_OK, EXIT_INVALID, EXIT_CONFIG = 0, 1, 78
SYSTEM_CONFIG_PATH = Path("/etc/parley/gateway.yaml")  # what the package installs and the unit names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="parley-gateway", description="Parley offline speech-translation gateway")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", type=Path,
                        help=f"YAML config (default: {SYSTEM_CONFIG_PATH} if it exists, else built-in defaults)")
    parser.add_argument("--host", help="bind address (overrides the file)")
    parser.add_argument("--port", type=int, help="port (overrides the file)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--check-config", action="store_true",
                        help="check the config and what it needs on this machine; exit 0 if it would start, else 1")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    config = _load_or_report(args)
    if args.check_config:
        return _check(config)
    if config is None or _report(environment_problems(config)):  # refused at start, not per session
        return EXIT_CONFIG
    try:
        from gateway.server import run_gateway
    except ModuleNotFoundError as exc:
        print(f"parley-gateway: the Python package {exc.name} is missing: install parley[gateway]", file=sys.stderr)
        return EXIT_CONFIG
    notifier = SystemdNotifier()

    async def serve_until_signalled() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        def on_ready(port: int, gateway) -> None:
            loop.add_signal_handler(signal.SIGUSR1, gateway.drain)  # maintenance: see gateway.health
            notifier.notify(READY="1", STATUS=f"listening on port {port}")

        await run_gateway(config, stop=stop, on_ready=on_ready)
        notifier.notify(STOPPING="1")

    try:
        asyncio.run(serve_until_signalled())
    except ModelError as exc:
        print(f"parley-gateway: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK


def _load_or_report(args: argparse.Namespace) -> GatewayConfig | None:
    """The config with the command line's overrides, or None after printing every problem with its line."""
    try:
        path = args.config or (SYSTEM_CONFIG_PATH if SYSTEM_CONFIG_PATH.exists() else None)
        config = load_yaml_config(path, GatewayConfig)
        overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
        return dataclasses.replace(config, **overrides) if overrides else config
    except ConfigError as exc:
        print(f"parley-gateway: invalid configuration:\n{exc}", file=sys.stderr)
    except ValueError as exc:
        print(f"parley-gateway: invalid configuration: {exc}", file=sys.stderr)
    return None


def _report(problems: list[str]) -> bool:
    for problem in problems:
        print(f"parley-gateway: {problem}", file=sys.stderr)
    return bool(problems)


def _check(config: GatewayConfig | None) -> int:
    if config is None or _report(environment_problems(config)):
        return EXIT_INVALID
    print(f"parley-gateway: configuration OK (languages: {', '.join(config.recognition.languages)})")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
