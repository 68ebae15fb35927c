"""The shipped units: systemd's own exposure score stays low, and the hardware stays reachable."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"
MAX_EXPOSURE = 2.0


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("unit", ["parley-agent.service", "parley-gateway.service"])
def test_exposure_score_is_at_most_two(unit):
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(UNITS / unit)],
        capture_output=True, text=True, timeout=120)
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_agent_keeps_alsa_gpio_and_spi():
    text = (UNITS / "parley-agent.service").read_text()
    allowed = re.findall(r"^DeviceAllow=(\S+) rw$", text, flags=re.M)
    assert {"char-alsa", "/dev/gpiomem", "char-gpiochip", "/dev/spidev0.0", "/dev/spidev0.1"} <= set(allowed)
    assert "PrivateDevices=yes" not in text
    assert re.search(r"^SupplementaryGroups=audio gpio spi$", text, flags=re.M)
