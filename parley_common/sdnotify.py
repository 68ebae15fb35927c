"""systemd's sd_notify protocol (READY/STATUS/WATCHDOG/STOPPING) without a dependency.

Outside systemd ($NOTIFY_SOCKET unset) every call is a cheap no-op, so the daemon code has no
"am I under systemd" branches.
"""

from __future__ import annotations

import os
import socket


class SystemdNotifier:
    def __init__(self, socket_path: str | None = None):
        path = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET", "")
        if path.startswith("@"):
            path = "\0" + path[1:]
        self._address = path or None
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) if self._address else None
        if self._socket is not None:
            self._socket.setblocking(False)  # a stuck manager must never stall the daemon's main loop

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def notify(self, **fields: str) -> None:
        """Send e.g. ``notify(READY="1", STATUS="listening")``; errors (systemd gone or not reading) are ignored."""
        if self._socket is None or self._address is None:  # one is set exactly when the other is
            return
        message = "\n".join(f"{k}={v}" for k, v in fields.items()).encode()
        try:
            self._socket.sendto(message, self._address)
        except OSError:
            pass

    def watchdog_interval_s(self) -> float | None:
        """Half of WatchdogSec (systemd's advice), or None when no watchdog is configured for us."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and int(pid) != os.getpid()):
            return None
        return int(usec) / 2e6

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
