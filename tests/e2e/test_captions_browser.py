"""The captions page in a real headless Chromium, fed by the real agent (a subprocess, so it can be
restarted) and the real gateway: partial then final, the offline banner, reconnecting with the lines said
before the restart, no console errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest
import srt

from agent.outputs.transcript import read_transcript
from tests.support.captions_page import start_chromium
from tests.support.captions_scene import agent_yaml, free_port, get_json, start_gateway, wait_until, write_scene

# Records what the page shows as it changes, so a partial that lasts 200 ms is not missed between polls.
RECORDER = """
window.__seen = [];
const record = (kind, row) => {
  const cell = row.querySelector('.cell[data-lang="es"]');
  if (cell.textContent) window.__seen.push([kind, row.dataset.utterance, row.textContent]);
};
new MutationObserver(() => {
  for (const row of document.querySelectorAll('.row')) record(row.classList.contains('final') ? 'final' : 'partial', row);
}).observe(document.getElementById('rows'), {subtree: true, childList: true, characterData: true, attributes: true});
"""


def start_agent(config: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config", str(config)],
                            stdout=log.open("a"), stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def stop_agent(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)


@pytest.fixture
def browser(tmp_path):
    driver = start_chromium(tmp_path / "chromium-profile")
    yield driver
    driver.quit()


def banner(driver) -> str:
    return driver.execute_script("return document.getElementById('banner').dataset.state")


def seen(driver) -> list[list[str]]:
    return driver.execute_script("return window.__seen")


def check_two_runs_in_one_transcript_and_live_file(out: Path) -> None:
    """Both runs wrote one transcript and one live captions.es.srt: distinct, ordered, nothing rewritten."""
    records = read_transcript(out / "transcript.jsonl")
    sessions = list(dict.fromkeys(r["session"] for r in records))
    assert len(sessions) == 2 and len({(r["session"], r["utterance"]) for r in records}) == len(records)
    proc = subprocess.run([sys.executable, "-m", "agent.cli", "subtitles", str(out / "transcript.jsonl"), "--lang", "es"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rendered = [(c.start.total_seconds(), c.end.total_seconds(), c.content) for c in srt.parse(proc.stdout)]
    live = [(c.start.total_seconds(), c.end.total_seconds(), c.content)
            for c in srt.parse((out / "subtitles" / "captions.es.srt").read_text())]
    assert [text for *_, text in live] == [text for *_, text in rendered]  # the first run's cues were kept
    first_run = sum(1 for r in records if r["session"] == sessions[0] and r["translations"].get("es"))
    for cues in (rendered, live):
        assert all(b[0] >= a[1] for a, b in pairwise(cues))
        assert cues[first_run][0] >= cues[first_run - 1][1] + 1.0  # the second run after the first, not on top


def test_captions_page_follows_the_agent_through_gateway_loss_and_agent_restart(browser, tmp_path):
    scene = write_scene(tmp_path / "scene.wav", utterances=2, gap_s=2.0)
    gateway_port, http_port = free_port(), free_port()
    gateway = start_gateway(gateway_port)
    config = tmp_path / "agent.yaml"
    config.write_text(agent_yaml(scene, gateway_port, http_port, tmp_path, loop=True,
                                 history_file=f'"{tmp_path / "state" / "captions-history.jsonl"}"'))
    log = tmp_path / "agent.log"
    agent = start_agent(config, log)
    try:
        page = f"http://127.0.0.1:{http_port}/?lang=es&lang=source"
        wait_until(lambda: get_json(f"http://127.0.0.1:{http_port}/healthz")[0] or agent.poll() is not None,
                   60, "the agent's HTTP server")
        assert agent.poll() is None, log.read_text()[-3000:]
        browser.get(page)
        browser.execute_script(RECORDER)

        # a partial for an utterance, then that utterance's final, in Spanish, with the direction
        def partial_then_final():
            events = seen(browser)
            for i, (kind, utterance, _) in enumerate(events):
                if kind == "partial" and any(k == "final" and u == utterance for k, u, _ in events[i + 1:]):
                    return utterance
            return None
        utterance = wait_until(partial_then_final, 90, "a partial and then its final")
        final_text = next(t for k, u, t in seen(browser) if k == "final" and u == utterance)
        assert "°" in final_text  # talker direction shown
        columns = browser.execute_script(
            "return [...document.querySelectorAll('#head .lang')].map(c => [c.dataset.lang,"
            " [...document.querySelectorAll('.row.final .cell[data-lang=\"' + c.dataset.lang + '\"]')].filter(x => x.textContent).length])")
        assert [lang for lang, _ in columns] == ["es", "source"] and all(n >= 1 for _, n in columns)
        assert banner(browser) == ""
        screenshot = Path(os.environ.get("PARLEY_SCREENSHOT_DIR", tmp_path)) / "captions-page.png"
        browser.save_screenshot(str(screenshot))
        assert browser.get_log("browser") == []  # no console errors (or anything else) so far

        # the gateway goes away: offline banner; it comes back: banner cleared
        gateway.close()
        wait_until(lambda: banner(browser) == "offline", 30, "the offline banner")
        assert "Offline" in browser.find_element("id", "banner").text
        gateway = start_gateway(gateway_port)
        wait_until(lambda: banner(browser) == "", 30, "the offline banner to clear")

        # the agent restarts: the page says so, reconnects by itself and shows new finals
        stop_agent(agent)
        wait_until(lambda: banner(browser) == "agent", 30, "the agent-unreachable banner")
        rows_before = browser.execute_script("return [...document.querySelectorAll('.row.final')].map(r => r.dataset.key)")
        snapshots = browser.execute_script("return Number(document.body.dataset.snapshots)")
        agent = start_agent(config, log)
        finals_before = len(rows_before)
        wait_until(lambda: banner(browser) == "", 60, "the page to reconnect")
        wait_until(lambda: browser.execute_script("return Number(document.body.dataset.snapshots)") > snapshots, 10,
                   "the restarted agent's snapshot")
        # the restarted agent's snapshot still holds what was said before (the history), apart from new lines
        rows_after = browser.execute_script("return [...document.querySelectorAll('.row.final')].map(r => r.dataset.key)")
        assert rows_after[:len(rows_before)] == rows_before
        new_final = ("return [...document.querySelectorAll('.row.final')].some(r => !arguments[0].includes(r.dataset.key)"
                     " && r.dataset.session !== arguments[0][0].split('/')[0])")
        wait_until(lambda: browser.execute_script(new_final, rows_before), 90, "a final of the restarted agent")
        assert finals_before >= 1
        # While the agent was down Chromium logs the refused EventSource connections; nothing else.
        errors = [e for e in browser.get_log("browser")
                  if not ("/events" in e["message"] and "ERR_CONNECTION_REFUSED" in e["message"])]
        assert errors == []
        stop_agent(agent)
        check_two_runs_in_one_transcript_and_live_file(tmp_path)
    finally:
        if agent.poll() is None:
            stop_agent(agent)
        gateway.close()
