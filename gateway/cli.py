"""``parley-gateway``: run the offline speech-translation server."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys
from pathlib import Path

from parley_common import __version__
from parley_common.typedyaml import ConfigError, load_yaml_config
from parley_common.sdnotify import SystemdNotifier
from gateway.config import GatewayConfig
from gateway.engines.whisper_models import ModelError
from gateway.server import run_gateway

EXIT_CONFIG = 78


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="parley-gateway", description="Parley offline speech-translation gateway")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", type=Path, help="YAML config (default: built-in defaults)")
    parser.add_argument("--host", help="bind address (overrides the file)")
    parser.add_argument("--port", type=int, help="port (overrides the file)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_yaml_config(args.config, GatewayConfig)
        overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
        config = dataclasses.replace(config, **overrides) if overrides else config
    except ConfigError as exc:
        print(f"parley-gateway: invalid configuration:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ValueError as exc:
        print(f"parley-gateway: invalid configuration: {exc}", file=sys.stderr)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
