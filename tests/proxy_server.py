"""A TCP proxy on loopback that a test can cut and restore: the database
"goes away" for the application in the middle of a run, for real.

- ``up``: bytes flow both ways to the target.
- ``cut()``: every open connection is reset and new ones are closed at once
  (the server is unreachable: errors come fast).
- ``blackhole()``: open connections are reset; new ones are accepted by the
  kernel but never answered (the server hangs: only timeouts end the wait).
- ``restore()``: back to ``up``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any


class TCPProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.mode = "up"
        self.cuts = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._held: list[socket.socket] = []
        self._stopped = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                mode = self.mode
                if mode == "down":
                    _reset(client)
                    continue
                if mode == "blackhole":
                    self._held.append(client)
                    continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(source)
                self._open.discard(sink)
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.close()

    def _drop_all(self) -> None:
        with self._lock:
            for sock in list(self._open) + self._held:
                _reset(sock)
            self._open.clear()
            self._held.clear()

    def cut(self) -> None:
        with self._lock:
            self.mode = "down"
            self.cuts += 1
        self._drop_all()

    def blackhole(self) -> None:
        with self._lock:
            self.mode = "blackhole"
            self.cuts += 1
        self._drop_all()

    def restore(self) -> None:
        with self._lock:
            self.mode = "up"
            held, self._held = self._held, []
        for sock in held:  # the black hole's, never answered
            _reset(sock)

    def close(self) -> None:
        self._stopped = True
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        with contextlib.suppress(OSError):
            self.listener.close()
        self._drop_all()
        self._thread.join(timeout=5)

    def __enter__(self) -> TCPProxy:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _reset(sock: socket.socket) -> None:
    """Close at once, as a crashed server looks to the client."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    # shutdown() first: close() alone leaves the connection up while a pump thread is in recv().
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
