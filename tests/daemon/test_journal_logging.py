"""Logs journald files at the right priority: ``<N>`` on every line when stderr is the journal's
stream (``$JOURNAL_STREAM`` matches it), plain lines otherwise; debug-level chatter stays debug."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from agent.events import FinalResult, LinkStatus, PartialResult
from agent.outputs.config import ConsoleConfig
from agent.outputs.console import ConsoleOutput
from agent.outputs.leds import LogLeds
from tests.support.captions_scene import free_port

EMIT = """
import logging, sys
from parley_common.logsetup import configure_logging
configure_logging(sys.argv[1])
log = logging.getLogger("parley.test")
log.debug("quiet"); log.info("hello"); log.warning("careful"); log.error("broken")
try:
    1 / 0
except ZeroDivisionError:
    log.exception("failed")
"""


def journal_stream(path) -> str:
    status = os.stat(path)
    return f"{status.st_dev}:{status.st_ino}"


def run_logging(tmp_path, level: str, journal: str | None) -> list[str]:
    out = tmp_path / "stderr.log"
    out.touch()
    env = dict(os.environ, JOURNAL_STREAM=journal(out) if callable(journal) else (journal or ""))
    with open(out, "w") as stderr:
        subprocess.run([sys.executable, "-c", EMIT, level], stderr=stderr, env=env, check=True, timeout=60)
    return out.read_text().splitlines()


def test_journal_lines_carry_the_syslog_priority_on_every_line(tmp_path):
    lines = run_logging(tmp_path, "info", journal_stream)
    assert lines[:3] == ["<6>parley.test: hello", "<4>parley.test: careful", "<3>parley.test: broken"]
    assert lines[3] == "<3>parley.test: failed" and len(lines) > 5
    assert all(line.startswith("<3>") for line in lines[3:]), lines  # the traceback too
    assert lines[-1] == "<3>ZeroDivisionError: division by zero"


def test_a_stderr_that_is_not_the_journal_stays_plain(tmp_path):
    for journal in (None, "12:34"):  # unset, or the journal's stream is another file
        lines = run_logging(tmp_path, "debug", journal)
        assert lines[:4] == ["DEBUG parley.test: quiet", "INFO parley.test: hello", "WARNING parley.test: careful",
                             "ERROR parley.test: broken"]


def test_console_partials_are_debug_and_finals_info_in_the_journal(tmp_path, monkeypatch):
    path = tmp_path / "stdout.log"
    with open(path, "w") as stream:
        monkeypatch.setenv("JOURNAL_STREAM", journal_stream(path))
        console = ConsoleOutput(ConsoleConfig(), stream=stream)
        console.partial(PartialResult(1, "good mor", {"es": "buenos"}))
        console.final(FinalResult(1, "good morning", {"es": "buenos días"}, 40.0, 0, 900.0))
        console.link_status(LinkStatus(False, "connection refused"))
    lines = path.read_text().splitlines()
    assert lines[0].startswith("<7>[1] … good mor") and lines[1].startswith("<6>[1]") and lines[2].startswith("<6>")
    assert lines[-1] == "<4>link down: connection refused"


def test_plain_console_output_has_no_priorities():
    stream = io.StringIO()
    ConsoleOutput(ConsoleConfig(), stream=stream).partial(PartialResult(1, "good mor", {}))
    assert stream.getvalue() == "[1] … good mor\n"


def test_the_log_led_backend_logs_at_debug(caplog):
    with caplog.at_level(logging.DEBUG, logger="parley.leds"):
        LogLeds().announce("listening")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [(logging.DEBUG, "leds: listening")]


@pytest.mark.slow
def test_health_probes_are_not_logged_but_refusals_are(tmp_path):
    port = free_port()
    log_path = tmp_path / "gateway.log"
    with open(log_path, "w") as stderr:
        gateway = subprocess.Popen([sys.executable, "-m", "gateway.cli", "--port", str(port)], stderr=stderr)
    try:
        deadline = time.monotonic() + 60
        while "listening" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        before = log_path.read_text().splitlines()
        for _ in range(3):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                assert response.status == 200
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nope", timeout=5)
        time.sleep(0.5)
    finally:
        gateway.terminate()
        gateway.wait(timeout=30)
    added = log_path.read_text().splitlines()[len(before):]
    assert [line for line in added if "healthz" in line or "200 OK" in line or "connection closed" in line] == []
    assert any("refused with HTTP 404" in line for line in added), added
