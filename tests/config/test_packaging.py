"""The package as pip installs it: profiles ship as package data, both commands report the version."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

import pytest

from parley_common import __version__


@pytest.mark.parametrize("command", ["agent.cli", "gateway.cli"])
def test_both_commands_print_the_version(command):
    done = subprocess.run([sys.executable, "-m", command, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.split()[-1] == __version__


def test_a_built_wheel_carries_the_array_profiles_and_checks_a_config_outside_the_checkout(repo_root, tmp_path):
    source = tmp_path / "src"
    shutil.copytree(repo_root, source, symlinks=True,
                    ignore=shutil.ignore_patterns(".git", ".venv", "out", "build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), str(source)], check=True, capture_output=True, timeout=240)
    wheel = next((tmp_path / "dist").glob("parley-*.whl"))
    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)
    assert (installed / "agent" / "arrays" / "respeaker-4mic-hat.yaml").is_file()
    check = ("import sys, agent.cli; assert agent.cli.__file__.startswith(sys.argv[1]), agent.cli.__file__; "
             "sys.exit(agent.cli.main(['check-config', sys.argv[2]]))")
    done = subprocess.run([sys.executable, "-c", check, str(installed), str(repo_root / "config" / "agent.yaml")],
                          cwd=tmp_path, env={"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
