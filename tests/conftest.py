"""Fixtures shared by every test package; helpers live in ``tests.support``."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import GatewayConfig, LimitsConfig
from gateway.server import GatewayThread
from tests.support.data import REPO_ROOT, shared_data_dir


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
