"""A loopback TCP proxy the fault tests control: forward, cut, reset, stall (half-open), refuse, inject garbage."""

from __future__ import annotations

import select
import socket
import struct
import threading


class FaultProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.mode = "forward"  # forward | refuse
        self._stalled: set[socket.socket] = set()  # the sockets themselves: an id() can be reused
        self.accepted = 0
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def _accept_loop(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return  # closed
            self.accepted += 1
            if self.mode == "refuse":
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        sockets = [client, upstream]
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select(sockets, [], [], 0.05)
                if client in self._stalled:
                    continue  # hold everything, answer nothing: a half-open connection
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is client else client).sendall(data)
        except (OSError, ValueError):  # ValueError: cut()/reset() closed a socket under select() (fd -1)
            return
        finally:
            for sock in sockets:
                sock.close()

    def cut(self) -> None:
        """Kill every live connection at once (server crash, cable pulled)."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def reset(self) -> None:
        """Reset every live connection (RST, not FIN): the agent's next send fails."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for client, upstream in pairs:
            try:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass  # that connection had already ended
            client.close()
            upstream.close()

    def stall_current(self) -> None:
        """Live connections go silent both ways but stay open; new connections work."""
        with self._lock:
            self._stalled |= {client for client, _ in self._pairs}

    def inject_garbage(self) -> None:
        """Bytes no WebSocket peer can parse, into every client's stream."""
        with self._lock:
            clients = [client for client, _ in self._pairs]
        for client in clients:
            try:
                client.sendall(b"\x8f\xff" + bytes(range(256)))
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self.cut()
        self._listener.close()
