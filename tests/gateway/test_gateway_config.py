"""The gateway's shipped config and its command line."""

from __future__ import annotations

import subprocess
import sys

from parley_common.typedyaml import load_yaml_config
from gateway.config import GatewayConfig


def test_shipped_gateway_yaml_is_the_defaults(repo_root):
    assert load_yaml_config(repo_root / "config" / "gateway.yaml", GatewayConfig) == GatewayConfig()


def test_bad_gateway_config_exits_78_naming_the_key(tmp_path):
    path = tmp_path / "gateway.yaml"
    path.write_text("limits:\n  max_sesions: 4\n")
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 78
    assert f"{path}:2: limits.max_sesions" in proc.stderr and "did you mean 'max_sessions'" in proc.stderr


def test_public_bind_without_key_is_refused_from_the_command_line():
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", "--host", "0.0.0.0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 78 and "not loopback" in proc.stderr
