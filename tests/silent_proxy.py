"""A TCP proxy that can go silent: stop forwarding without closing anything (test support).

It models a network partition behind something that still ACKs the client's packets (a
proxy, PgBouncer, a NAT or load balancer that keeps its side open): the client's kernel
sees a healthy connection, so neither TCP keepalives nor tcp_user_timeout nor the server's
statement_timeout ever fire. While partitioned, new connections are accepted and held
without being forwarded either. `heal()` resumes forwarding on every connection.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class SilentProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._stopped = threading.Event()
        self._trigger: Callable[[bytes], bool] | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    @property
    def partitioned(self) -> bool:
        return not self._forwarding.is_set()

    def partition(self) -> None:
        """Stop reading and writing on every connection; keep all of them open."""
        self._forwarding.clear()

    def partition_on(self, trigger: Callable[[bytes], bool]) -> None:
        """Go silent when the client sends a packet that `trigger` picks (mid-request);
        that packet is held, not delivered, until `heal()`."""
        self._trigger = trigger

    def heal(self) -> None:
        self._forwarding.set()

    def url(self, database_url: str) -> str:
        """`database_url` with its host and port pointed at the proxy."""
        from sqlalchemy.engine import make_url

        url = make_url(database_url).set(host="127.0.0.1", port=self.port)
        return url.render_as_string(hide_password=False)

    def close(self) -> None:
        self._stopped.set()
        for thread in self._threads:
            thread.join(timeout=2)
        with self._lock:
            for sock in self._sockets:
                sock.close()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._pump, args=(client,), daemon=True)
            with self._lock:
                self._sockets.append(client)
                self._threads.append(thread)
            thread.start()

    def _pump(self, client: socket.socket) -> None:
        # A partition at accept time holds the new connection too: not even the upstream
        # connection is opened until the network heals.
        while not self._forwarding.wait(0.05):
            if self._stopped.is_set():
                return
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            return
        with self._lock:
            self._sockets.append(server)
        peers = {client: server, server: client}
        with selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ)
            selector.register(server, selectors.EVENT_READ)
            while not self._stopped.is_set():
                if not self._forwarding.is_set():
                    time.sleep(0.02)  # silent: read nothing, write nothing, close nothing
                    continue
                for key, _ in selector.select(timeout=0.05):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        data = source.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        client.close()
                        server.close()
                        return
                    trigger = self._trigger
                    if source is client and trigger is not None and trigger(data):
                        self._trigger = None
                        self.partition()
                        while not self._forwarding.wait(0.05):
                            if self._stopped.is_set():
                                return
                    try:
                        peers[source].sendall(data)
                    except OSError:
                        client.close()
                        server.close()
                        return


@contextmanager
def silent_proxy(upstream: tuple[str, int]) -> Iterator[SilentProxy]:
    proxy = SilentProxy(upstream)
    try:
        yield proxy
    finally:
        proxy.close()
