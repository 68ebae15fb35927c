"""A persistent slowloris: ``python -m tests.support.http_flood PORT COUNT SECONDS`` keeps COUNT
connections open to PORT on loopback, each with a request that never ends, and opens again every
one the server closes; at the end (or on SIGTERM) it prints ``opened=N closed_by_server=M``.

Its own process, so its thousands of sockets cost the test's in-process gateway no GIL time."""

from __future__ import annotations

import resource
import select
import signal
import socket
import sys
import time

HALF_REQUEST = b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Never-Ends: "


def flood(port: int, count: int, seconds: float) -> tuple[int, int]:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sockets: dict[int, tuple[socket.socket, bool]] = {}
    opened = closed = 0
    end = time.monotonic() + seconds
    stopped = []
    signal.signal(signal.SIGTERM, lambda *_: stopped.append(True))
    while time.monotonic() < end and not stopped:
        while len(sockets) < count:
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            sockets[sock.fileno()] = (sock, False)
            opened += 1
        poller = select.poll()
        for fd in sockets:
            poller.register(fd, select.POLLIN | select.POLLOUT)
        for fd, events in poller.poll(100):
            sock, sent = sockets[fd]
            if events & (select.POLLIN | select.POLLHUP | select.POLLERR):
                del sockets[fd]
                sock.close()
                closed += 1
            elif events & select.POLLOUT and not sent:
                try:
                    sock.send(HALF_REQUEST)
                    sockets[fd] = (sock, True)
                except OSError:
                    pass
        time.sleep(0.3)
    return opened, closed


if __name__ == "__main__":
    opened, closed = flood(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
    print(f"opened={opened} closed_by_server={closed}", flush=True)
