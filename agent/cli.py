"""``parley``: the agent's command line (run, demo, check-config, analyze, devices, leds, config-reference,
subtitles).

Exit statuses: 0 ok; 1 the config (or a device) is invalid for check-config/devices/leds; 2 usage
error (argparse); 78 (EX_CONFIG) when ``parley run`` is given a bad config, so systemd can be told
not to restart on it (``RestartPreventExitStatus=78``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml

from agent import __version__

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_CONFIG = 78

DEFAULT_CONFIG_HELP = "YAML config (default: /etc/parley/agent.yaml if it exists, else built-in defaults)"


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return args.handler(args)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley", description="Parley room speech-translation agent")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run the agent daemon")
    run.add_argument("--config", type=Path, help=DEFAULT_CONFIG_HELP)
    run.set_defaults(handler=_cmd_run)

    demo = sub.add_parser("demo", help="translate a simulated multichannel recording through a local gateway")
    demo.add_argument("--out", type=Path, default=Path("out/demo"), help="where the scene and spoken translations go")
    demo.add_argument("--shared-data", type=Path, default=None,
                      help="directory with speech/ and noise/ recordings (default: ../shared/data if present)")
    demo.add_argument("--fast", action="store_true", help="feed the recording faster than real time")
    demo.add_argument("--conversation", action="store_true",
                      help="an English talker at 60 deg and a Spanish one at 240 deg take turns; each is translated for the other")
    demo.add_argument("--route-by", choices=("direction", "language", "both"), default="direction",
                      help="--conversation: how each utterance finds its party (see conversation.route_by)")
    demo.set_defaults(handler=_cmd_demo)

    check = sub.add_parser("check-config", help="validate a config file and print the effective config")
    check.add_argument("file", type=Path)
    check.set_defaults(handler=_cmd_check_config)

    analyze = sub.add_parser("analyze", help="run capture -> front end on a recording and print each segment")
    analyze.add_argument("recording", type=Path, help="multichannel WAV as the array records it")
    analyze.add_argument("--config", type=Path, help=DEFAULT_CONFIG_HELP)
    analyze.add_argument("--write-segments", type=Path, metavar="DIR",
                         help="write each segment's beamformed audio to DIR/segment-NNN.wav")
    analyze.set_defaults(handler=_cmd_analyze)

    ref = sub.add_parser("config-reference", help="print the annotated reference config (every key, default, help)")
    ref.set_defaults(handler=_cmd_config_reference)

    devices = sub.add_parser("devices", help="list audio input/output devices")
    devices.set_defaults(handler=_cmd_devices)

    leds = sub.add_parser("leds", help="cycle the LEDs through every device state (for installers)")
    leds.add_argument("--config", type=Path, help=DEFAULT_CONFIG_HELP)
    leds.add_argument("--seconds-per-state", type=float, default=2.0)
    leds.set_defaults(handler=_cmd_leds)

    subs = sub.add_parser("subtitles", help="write SubRip or WebVTT subtitles from a JSON-lines transcript")
    subs.add_argument("transcript", type=Path)
    subs.add_argument("--lang", required=True, help="a translation's language, or 'source' for what was recognized")
    subs.add_argument("--format", choices=("srt", "vtt"), default="srt")
    subs.add_argument("--sample-rate-hz", type=int, default=16000, help="the agent's capture.sample_rate_hz")
    subs.add_argument("--out", type=Path, help="output file (default: standard output)")
    subs.set_defaults(handler=_cmd_subtitles)
    return parser


def _resolve_config_path(path: Path | None) -> Path | None:
    from agent.config.schema import SYSTEM_CONFIG_PATH

    if path is not None:
        return path
    return SYSTEM_CONFIG_PATH if SYSTEM_CONFIG_PATH.exists() else None


def _load_or_report(path: Path | None, check_machine: bool = True):
    """The config, or None after printing every problem to stderr: the file's own, then (with
    ``check_machine``) what it points at on this machine (folders, LED backend, WAV input)."""
    from agent.config.schema import check_environment, load_agent_config
    from parley_common.typedyaml import ConfigError

    try:
        config = load_agent_config(path)
        if check_machine:
            check_environment(config, path)
        return config
    except ConfigError as exc:
        print(f"parley: invalid configuration ({len(exc.issues)} problem(s)):", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        return None


def _cmd_check_config(args: argparse.Namespace) -> int:
    from parley_common.typedyaml import to_plain

    config = _load_or_report(args.file)
    if config is None:
        return EXIT_INVALID
    print(f"# {args.file}: valid. Effective configuration (secrets redacted):")
    print(yaml.safe_dump(to_plain(config), sort_keys=False), end="")
    return EXIT_OK


def _cmd_analyze(args: argparse.Namespace) -> int:
    from agent.analyze import analyze_recording, print_segments, write_segments
    from agent.audio import CaptureError
    from agent.daemon import configure_logging

    config = _load_or_report(_resolve_config_path(args.config), check_machine=False)  # a recording from another box
    if config is None:
        return EXIT_INVALID
    configure_logging("warning")  # the capture's level warnings, not the per-stage info lines
    try:
        segments = analyze_recording(config, args.recording)
    except CaptureError as exc:
        print(f"parley analyze: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print_segments(segments, config.frontend.vad.engine, sys.stdout)
    if args.write_segments:
        paths = write_segments(segments, args.write_segments, config.capture.sample_rate_hz)
        print(f"wrote {len(paths)} segment(s) to {args.write_segments}")
    return EXIT_OK


def _cmd_config_reference(args: argparse.Namespace) -> int:
    from agent.config.reference import render_reference
    from agent.config.schema import AgentConfig

    header = (
        "Parley agent configuration: the annotated reference, with every key at its default.\n"
        "Generated by `parley config-reference`; systemd runs the agent with /etc/parley/agent.yaml.\n"
        "Any key may be left out; unknown keys are errors. Validate with `parley check-config FILE`.\n"
    )
    print(render_reference(AgentConfig, header), end="")
    return EXIT_OK


def _cmd_devices(args: argparse.Namespace) -> int:
    from agent.audio.devices import format_device_table

    print(format_device_table())
    return EXIT_OK


def _cmd_leds(args: argparse.Namespace) -> int:
    from agent.daemon import cycle_leds

    config = _load_or_report(_resolve_config_path(args.config))
    if config is None:
        return EXIT_INVALID
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cycle_leds(config, args.seconds_per_state)
    return EXIT_OK


def _cmd_subtitles(args: argparse.Namespace) -> int:
    from agent.outputs.subtitles import render, transcript_languages
    from agent.outputs.transcript import NotATranscript, load_transcript

    try:
        records = load_transcript(args.transcript)
    except OSError as exc:
        print(f"parley subtitles: cannot read {args.transcript}: {exc.strerror}", file=sys.stderr)
        return EXIT_INVALID
    except NotATranscript as exc:
        print(f"parley subtitles: {exc}", file=sys.stderr)
        return EXIT_INVALID
    languages = transcript_languages(records)
    if args.lang not in languages:
        held = ", ".join(sorted(languages)) if records else "nothing yet (no finals)"
        print(f"parley subtitles: --lang {args.lang}: not in {args.transcript}; it holds: {held}", file=sys.stderr)
        return EXIT_INVALID
    text = render(records, args.lang, args.format, args.sample_rate_hz)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from agent.daemon import run_daemon

    from agent.audio import CaptureError, DeviceNotFound
    from agent.uplink.credentials import CredentialError

    config = _load_or_report(_resolve_config_path(args.config))
    if config is None:
        return EXIT_CONFIG
    try:
        return run_daemon(config)
    except (CaptureError, DeviceNotFound, CredentialError, OSError) as exc:  # what the pre-flight checks could not foresee
        print(f"parley: cannot start: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}",
              file=sys.stderr)
        return EXIT_CONFIG


def _cmd_demo(args: argparse.Namespace) -> int:
    from agent.demo import run_demo

    return run_demo(out_dir=args.out, shared_data=args.shared_data, realtime=not args.fast, conversation=args.conversation,
                    route_by=args.route_by)


if __name__ == "__main__":
    sys.exit(main())
