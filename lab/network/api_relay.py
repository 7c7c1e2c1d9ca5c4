"""STAND-IN for the route from a pod to the clusters' API servers.

In a cluster a pod reaches its own API server (and, for istiod, every remote one named in a
remote secret) at an address routed to it. The lab's API servers listen on the host's loopback
(127.0.0.1:<port>, the addresses in the lab's kubeconfig and in every remote secret), which a
process in a pod's network namespace cannot reach: its 127.0.0.1 is the pod's own. So for each
pod the node listens on 127.0.0.1:<port> inside the pod's namespace, for every API server port of
the lab, and passes each connection to the host's 127.0.0.1:<port>. Nothing else is relayed: a
pod reaches other pods, and other clusters, only through the lab's network (lab/network/namespaces.py).

A socket belongs to the network namespace of the thread that made it: each listening socket is
made by a thread that first enters the pod's namespace (setns), and the connections to the API
servers by this process's own threads, which stay in the host's.
"""

from __future__ import annotations

import ctypes
import os
import selectors
import socket
import threading
from typing import Iterable

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _listen_in(netns_path: str, port: int) -> socket.socket:
    """A socket listening on 127.0.0.1:port inside the namespace at netns_path."""
    result: dict = {}

    def make() -> None:
        try:
            fd = os.open(netns_path, os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {netns_path}")
            finally:
                os.close(fd)
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen(64)
            result["socket"] = s
        except OSError as error:
            result["error"] = error

    # A thread of its own, which ends in the pod's namespace: no other thread ever changes its own.
    thread = threading.Thread(target=make, daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["socket"]


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)  # the other side sees the end of this direction
        except OSError:
            pass


def _relay(client: socket.socket, port: int) -> None:
    try:
        upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
    except OSError:
        client.close()  # the API server is down: the pod sees the connection closed, as refused
        return
    upstream.settimeout(None)
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


class ApiRelay:
    """Listeners for the lab's API server ports in each pod's namespace (`add`, `remove`)."""

    def __init__(self, ports: Iterable[int]):
        self.ports = sorted(set(ports))
        self._selector = selectors.DefaultSelector()
        self._by_netns: dict[str, list[socket.socket]] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def add(self, netns: str) -> None:
        with self._lock:
            if netns in self._by_netns:
                return
            listeners = [_listen_in(f"/run/netns/{netns}", port) for port in self.ports]
            for s, port in zip(listeners, self.ports):
                s.setblocking(False)
                self._selector.register(s, selectors.EVENT_READ, port)
            self._by_netns[netns] = listeners

    def remove(self, netns: str) -> None:
        with self._lock:
            for s in self._by_netns.pop(netns, []):
                self._selector.unregister(s)
                s.close()

    def _serve(self) -> None:
        while True:
            # Under the lock: `add` and `remove` change the selector between two waits only.
            with self._lock:
                events = self._selector.select(timeout=0.2) if self._by_netns else []
            if not events:
                threading.Event().wait(0.05)
            for key, _ in events:
                try:
                    client, _ = key.fileobj.accept()  # type: ignore[union-attr]
                except OSError:
                    continue
                client.setblocking(True)
                threading.Thread(target=_relay, args=(client, key.data), daemon=True).start()
