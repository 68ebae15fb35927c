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


DEBIAN = UNITS.parent / "debian"


def directive(unit: str, key: str) -> list[str]:
    return re.findall(rf"^{key}=(.*)$", (UNITS / unit).read_text(), flags=re.M)


@pytest.mark.parametrize("unit, program", [("parley-agent.service", "parley"), ("parley-gateway.service", "parley-gateway")])
def test_each_unit_runs_its_packages_venv_with_a_descriptor_limit(unit, program):
    package = unit.removesuffix(".service")
    [exec_start] = directive(unit, "ExecStart")
    assert exec_start.startswith(f"/opt/venvs/{package}/bin/{program} ")
    assert "/etc/parley/" in exec_start and int(directive(unit, "LimitNOFILE")[0]) >= 1024
    assert (DEBIAN / f"{package}.service").resolve() == UNITS / unit  # the package ships this very file


def test_state_logs_and_the_model_cache_are_systemd_managed_directories():
    assert directive("parley-agent.service", "StateDirectory") == ["parley"]
    assert directive("parley-agent.service", "LogsDirectory") == ["parley"]
    assert directive("parley-gateway.service", "CacheDirectory") == ["parley-gateway"]


def test_sysusers_create_the_service_users_and_the_agents_device_groups():
    agent = (DEBIAN / "parley-agent.sysusers").read_text()
    lines = {tuple(line.split()[:3]) for line in agent.splitlines() if line and not line.startswith("#")}
    assert {("g", "gpio", "-"), ("g", "spi", "-"), ("m", "parley", "audio"), ("m", "parley", "gpio"),
            ("m", "parley", "spi")} <= lines and any(line[:2] == ("u", "parley") for line in lines)
    assert directive("parley-agent.service", "User") == ["parley"]
    gateway = (DEBIAN / "parley-gateway.sysusers").read_text()
    assert re.search(r"^u parley-gateway ", gateway, flags=re.M)
    assert directive("parley-gateway.service", "User") == ["parley-gateway"]


def test_the_package_version_is_the_programs():
    from parley_common import __version__

    first = (DEBIAN / "changelog").read_text().splitlines()[0]
    assert first.startswith(f"parley ({__version__}"), first
