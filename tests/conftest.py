"""Fixtures shared by every test package; helpers live in ``tests.support``."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import GatewayConfig, LimitsConfig
from gateway.server import GatewayThread
from tests.support.data import REPO_ROOT, shared_data_dir


def pytest_collection_modifyitems(items):
    """Every test that uses the shared real gateway is slow: ``make test-fast`` (``-m "not slow"``) skips it.
    Tests that start their own gateway mark themselves (``pytestmark = pytest.mark.slow``)."""
    for item in items:
        if "gateway" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _a_real_gateway_only_in_slow_tests(request, monkeypatch):
    """A test that starts a GatewayThread without the slow mark fails, so the fast run stays fast."""
    if request.node.get_closest_marker("slow"):
        return

    def refuse(self, *args, **kwargs):
        pytest.fail(f"{request.node.nodeid} starts a real gateway: mark it slow (pytestmark = pytest.mark.slow)")
    monkeypatch.setattr(GatewayThread, "start", refuse)


@pytest.fixture(autouse=True)
def _not_this_machines_installed_config(tmp_path_factory, monkeypatch):
    """A command run without --config reads /etc/parley/agent.yaml when the package is installed;
    the tests' expectations are about the built-in defaults, not that file."""
    monkeypatch.setattr("agent.config.schema.SYSTEM_CONFIG_PATH",
                        tmp_path_factory.getbasetemp() / "no-installed-config" / "agent.yaml")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path | None:
    return shared_data_dir()


# The fault tests leave sessions half-open on purpose; the gateway counts them until its idle
# timeout, so a gateway shared by the whole run needs room for them beyond the default 8.
SHARED_GATEWAY_SESSIONS = 64


@pytest.fixture(scope="session")
def gateway():
    """One real gateway on loopback for every test that needs one (defaults but the session limit)."""
    with GatewayThread(GatewayConfig(port=0, limits=LimitsConfig(max_sessions=SHARED_GATEWAY_SESSIONS,
                                                               max_sessions_per_address=SHARED_GATEWAY_SESSIONS))) as gw:
        yield gw
