"""sd_notify: messages reach the manager, and a manager that stops reading never stalls the daemon."""

from __future__ import annotations

import socket
import time

from parley_common.sdnotify import SystemdNotifier


def test_messages_arrive_and_a_full_queue_does_not_block(tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    manager = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    manager.bind(str(path))
    notifier = SystemdNotifier(str(path))
    notifier.notify(READY="1", STATUS="listening")
    assert manager.recv(4096) == b"READY=1\nSTATUS=listening"
    started = time.monotonic()
    for _ in range(500):  # far beyond the kernel's datagram queue
        notifier.notify(WATCHDOG="1")
    assert time.monotonic() - started < 1.0
    assert manager.recv(4096) == b"WATCHDOG=1"
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert notifier.watchdog_interval_s() == 2.0
    notifier.close()
    manager.close()


def test_outside_systemd_it_is_a_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = SystemdNotifier()
    assert not notifier.enabled
    notifier.notify(READY="1")
