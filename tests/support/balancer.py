"""Real HAProxy from the shipped reference config in front of real gateway processes, on loopback.

``config/haproxy.cfg`` is used as shipped except what only a machine can say: its listen
address (here TLS on a loopback port with a throwaway certificate), the runtime socket and the
server lines. Each replaced line must exist, so a reshaped reference config breaks the tests
rather than going untested.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.data import REPO_ROOT

HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
REFERENCE = REPO_ROOT / "config" / "haproxy.cfg"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def self_signed_pem(directory: Path) -> Path:
    """A certificate for 127.0.0.1 followed by its key, the form HAProxy's ``crt`` reads."""
    key, cert, pem = directory / "key.pem", directory / "cert.pem", directory / "parley.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    return pem


def render_reference(port: int, pem: Path, socket_path: Path, servers: dict[str, int]) -> str:
    text = REFERENCE.read_text()
    replacements = [
        (r"^\s*log /dev/log local0\n", ""),  # no syslog in a test; HAProxy logs nothing then
        (r"stats socket /run/haproxy/admin\.sock", f"stats socket {socket_path}"),
        (r"bind :443 ssl crt /etc/haproxy/certs/parley\.pem", f"bind 127.0.0.1:{port} ssl crt {pem}"),
    ]
    for pattern, replacement in replacements:
        text, count = re.subn(pattern, replacement, text, flags=re.M)
        assert count == 1, f"config/haproxy.cfg has no line matching {pattern!r}"
    lines = "".join(f"    server {name} 127.0.0.1:{port}\n" for name, port in servers.items())
    text, count = re.subn(r"(^    server gw\d .*\n)+", lines, text, flags=re.M)
    assert count == 1, "config/haproxy.cfg has no block of server lines"
    return text


class GatewayProcess:
    """``parley-gateway`` as a process of its own (so it can be killed), configured by YAML text."""

    def __init__(self, directory: Path, name: str, yaml_text: str):
        self.name = name
        self.port = free_port()
        self.config_path = directory / f"{name}.yaml"
        self.config_path.write_text(yaml_text)
        self.process: subprocess.Popen | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "GatewayProcess":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "--config", str(self.config_path), "--port", str(self.port),
             "--log-level", "warning"], cwd=REPO_ROOT, stdin=subprocess.DEVNULL)
        return self

    def health(self) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(self.http_url + "/healthz", timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())
        except (urllib.error.URLError, OSError):
            return 0, {}

    def metrics(self) -> str:
        with urllib.request.urlopen(self.http_url + "/metrics", timeout=5) as response:
            return response.read().decode()

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline_s = time.monotonic() + timeout_s
        while self.health()[0] != 200:
            assert self.process.poll() is None, f"gateway {self.name} exited with {self.process.returncode}"
            assert time.monotonic() < deadline_s, f"gateway {self.name} not ready in {timeout_s} s"
            time.sleep(0.2)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def drain(self) -> None:
        self.process.send_signal(signal.SIGUSR1)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Balancer:
    """HAProxy in the foreground on the reference config; ``url`` is its wss:// address."""

    def __init__(self, directory: Path, servers: dict[str, int]):
        self.port = free_port()
        self.pem = self_signed_pem(directory)
        self.socket_path = directory / "admin.sock"
        self.config_path = directory / "haproxy.cfg"
        self.config_path.write_text(render_reference(self.port, self.pem, self.socket_path, servers))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"wss://127.0.0.1:{self.port}"

    def start(self) -> "Balancer":
        check = subprocess.run([HAPROXY, "-c", "-f", str(self.config_path)], capture_output=True, text=True)
        assert check.returncode == 0, f"haproxy -c: {check.stdout}{check.stderr}"
        self.process = subprocess.Popen([HAPROXY, "-db", "-f", str(self.config_path)], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return self

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(self.socket_path))
            sock.sendall(line.encode() + b"\n")
            return b"".join(iter(lambda: sock.recv(65536), b"")).decode()

    def servers_up(self) -> set[str]:
        """Names of the servers HAProxy's health checks hold up (``show stat``: svname, status)."""
        try:
            rows = [row.split(",") for row in self.command("show stat").splitlines() if row and row[0] != "#"]
        except OSError:
            return set()
        return {row[1] for row in rows if row[0] == "gateways" and row[1] not in ("BACKEND", "FRONTEND")
                and row[17] == "UP"}

    def wait_up(self, names: set[str], timeout_s: float = 20.0) -> None:
        deadline_s = time.monotonic() + timeout_s
        while not names <= self.servers_up():
            assert self.process.poll() is None, f"haproxy exited: {self.process.stderr.read().decode()}"
            assert time.monotonic() < deadline_s, f"HAProxy holds {self.servers_up()} up, expected {names}"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def gateway_yaml(**limits) -> str:
    """A light gateway (pocketsphinx, webrtc VAD, one worker) trusting the balancer on loopback."""
    limit_lines = "".join(f"  {key}: {json.dumps(value)}\n" for key, value in limits.items())
    return ("recognition:\n  languages:\n    en-US: {engine: pocketsphinx}\n  processes: 1\n"
            "  vad: {engine: webrtc}\nengine_threads: 2\nlimits:\n  trusted_proxies: [127.0.0.1]\n" + limit_lines)

