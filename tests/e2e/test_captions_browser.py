"""The captions page in a real headless Chromium, fed by the real agent (a subprocess, so it can be
restarted) and the real gateway: partial then final, the offline banner, reconnecting, no console errors."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.support.captions_scene import agent_yaml, free_port, get_json, start_gateway, wait_until, write_scene

pytestmark = pytest.mark.slow  # starts its own real gateway

CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,720")
# Records what the page shows as it changes, so a partial that lasts 200 ms is not missed between polls.
RECORDER = """
window.__seen = [];
const record = (kind, el) => { if (el.textContent) window.__seen.push([kind, el.dataset.utterance, el.textContent]); };
new MutationObserver(() => {
  const column = document.querySelector('.column[data-lang="es"]');
  record('partial', column.querySelector('.partial'));
  const finals = column.querySelectorAll('.final');
  if (finals.length) record('final', finals[finals.length - 1]);
}).observe(document.getElementById('columns'), {subtree: true, childList: true, characterData: true});
"""


def start_agent(config: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config", str(config)],
                            stdout=log.open("a"), stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def stop_agent(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)


@pytest.fixture
def browser(tmp_path):
    if not (CHROMEDRIVER and CHROMIUM):
        pytest.fail("chromium and chromium-driver are not installed (make deps installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def banner(driver) -> str:
    return driver.execute_script("return document.getElementById('banner').className")


def seen(driver) -> list[list[str]]:
    return driver.execute_script("return window.__seen")


def test_captions_page_follows_the_agent_through_gateway_loss_and_agent_restart(browser, tmp_path):
    scene = write_scene(tmp_path / "scene.wav", utterances=2, gap_s=2.0)
    gateway_port, http_port = free_port(), free_port()
    gateway = start_gateway(gateway_port)
    config = tmp_path / "agent.yaml"
    config.write_text(agent_yaml(scene, gateway_port, http_port, tmp_path, loop=True))
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
            "return [...document.querySelectorAll('.column')].map(c => [c.dataset.lang, c.querySelectorAll('.final').length])")
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
        agent = start_agent(config, log)
        finals_before = len(browser.find_elements("css selector", '.column[data-lang="es"] .final'))
        wait_until(lambda: banner(browser) == "", 60, "the page to reconnect")
        browser.execute_script(RECORDER)
        wait_until(lambda: any(k == "final" for k, _, _ in seen(browser)), 90, "a final after the restart")
        assert finals_before >= 1
        # While the agent was down Chromium logs the refused EventSource connections; nothing else.
        errors = [e for e in browser.get_log("browser")
                  if not ("/events" in e["message"] and "ERR_CONNECTION_REFUSED" in e["message"])]
        assert errors == []
    finally:
        if agent.poll() is None:
            stop_agent(agent)
        gateway.close()
