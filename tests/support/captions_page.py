"""The captions page in a real headless Chromium, served by the agent's real HTTP server and fed by
the real device state machine: what the page tests and the screenshot bench share."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from agent.events import FinalResult, LinkStatus, PartialResult, SpeechStarted
from agent.outputs.config import HttpConfig
from agent.outputs.http import HttpOutput
from agent.state import DeviceStateMachine

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--force-device-scale-factor=1")
SESSION = "20261203T120000.000Z-5e551a"


def start_chromium(profile_dir: Path, width: int = 1280, height: int = 720) -> webdriver.Chrome:
    chromedriver, chromium = shutil.which("chromedriver"), shutil.which("chromium")
    if not (chromedriver and chromium):
        raise RuntimeError("chromium and chromium-driver are not installed (make deps installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    set_viewport(driver, width, height)
    return driver


def set_viewport(driver: webdriver.Chrome, width: int, height: int) -> None:
    """The page's own size (what a kiosk screen is), not the window's."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


class CaptionsBox:
    """A real HTTP output and device state machine, as the daemon wires them; the test plays the uplink."""

    def __init__(self, languages=("source", "en", "es", "ca"), spoken: str | None = "en", finals_kept: int = 50):
        self.state = DeviceStateMachine()
        self.http = HttpOutput(HttpConfig(enabled=True, port=0, finals_kept=finals_kept), self._status,
                               audio_stall_s=5.0, languages=languages, spoken=spoken)
        self.http.start()
        self.state.subscribe(self.http.device_state)
        self.state.started()
        self.http.publish(LinkStatus(True, "connected"))

    @staticmethod
    def _status() -> dict:
        return {"last_frame_age_s": 0.02, "capture_state": "running"}

    def url(self, *langs: str) -> str:
        return self.http.url + "/?" + "&".join(f"lang={lang}" for lang in langs)

    def speech(self, utterance_id: int, azimuth_deg: float = 60.0) -> None:
        self.http.publish(SpeechStarted(utterance_id, utterance_id * 48000, azimuth_deg, 0.8, session=SESSION))

    def partial(self, utterance_id: int, source: str, translations: dict, **stamp) -> None:
        self.http.publish(PartialResult(utterance_id, source, translations, session=SESSION, **stamp))

    def final(self, utterance_id: int, source: str, translations: dict, azimuth_deg: float | None = 60.0,
              **stamp) -> None:
        self.http.publish(FinalResult(utterance_id, source, translations, azimuth_deg, utterance_id * 48000, 2500.0,
                                      session=SESSION, **stamp))

    def close(self) -> None:
        self.http.close()


def wait_for(driver, script: str, timeout_s: float = 10.0, what: str = ""):
    """Polls a JS expression until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = driver.execute_script("return " + script)
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what or script}")
