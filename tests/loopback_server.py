"""A raw TCP server on 127.0.0.1 for test upstreams that speak HTTP byte by byte.

Subclasses implement `_serve(sock, number)`; a thread serves each connection,
`connections` counts them, and `stop()` closes the listener and every socket.
"""

from __future__ import annotations

import socket
import threading


class LoopbackServer:
    connections: int

    def start(self):  # type: ignore[no-untyped-def]
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while self.running:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                number = self.connections
                self.open.append(sock)
            threading.Thread(target=self._serve, args=(sock, number), daemon=True).start()

    def _serve(self, sock: socket.socket, number: int) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.running = False
        self.listener.close()
        with self.lock:
            for sock in self.open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
