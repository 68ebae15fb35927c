"""Running ``parley`` as systemd would, and asserting how it refuses a config."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def parley(args, env_extra=None, timeout_s=60.0, env_drop=()):
    env = {k: v for k, v in os.environ.items() if k != "PARLEY_PIN_FACTORY" and k not in env_drop}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True,
                          timeout=timeout_s, env=env)


def config_file(tmp_path, body: str, name: str = "agent.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def assert_refused(path, expected: str, env_extra=None, line: int | None = None, env_drop=()):
    """check-config exits 1 and ``parley run`` 78 (systemd does not restart it), both with
    ``expected`` (at ``file:line``) and no traceback."""
    checked = parley(["check-config", str(path)], env_extra, env_drop=env_drop)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    ran = parley(["run", "--config", str(path)], env_extra, env_drop=env_drop)
    assert ran.returncode == 78, ran.stderr
    for result in (checked, ran):
        assert expected in result.stderr, result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        if line is not None:
            assert f"{path}:{line}: " in result.stderr, result.stderr
