"""A webhook POST whose connection can be cut from another thread.

A socket timeout bounds each read, not a request: a receiver that sends one byte every
few seconds holds a plain ``urlopen`` forever. The notifier gives each attempt a deadline
(:mod:`sysstream.alerts._notify`); when it passes, :meth:`Cut.now` shuts the connection
down, the blocked read returns, and the attempt's thread ends instead of lingering.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import socket
import threading
import urllib.error
import urllib.request
from typing import Any

__all__ = ["Cut", "post"]

MAX_ANSWER = 65536  # bytes of the answer read (and ignored): its status is what counts


class Cut:
    """The connections of one attempt, shut down together by :meth:`now`; a connection
    opened after that is shut down as soon as it is open."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.done = False

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if not self.done:
                self._sockets.append(sock)
                return
        _shut(sock)

    def now(self) -> None:
        with self._lock:
            self.done = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # closed already
        sock.shutdown(socket.SHUT_RDWR)  # wakes a read blocked in another thread


class _WatchedHTTP(http.client.HTTPConnection):
    def __init__(self, *args: Any, cut: Cut, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cut = cut

    def connect(self) -> None:
        super().connect()
        self._cut.watch(self.sock)


class _WatchedHTTPS(http.client.HTTPSConnection):
    def __init__(self, *args: Any, cut: Cut, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cut = cut

    def connect(self) -> None:
        super().connect()  # the TLS handshake is one call, bounded by the socket timeout
        self._cut.watch(self.sock)


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, cut: Cut) -> None:
        super().__init__()
        self._cut = cut

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_WatchedHTTP, cut=self._cut), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, cut: Cut) -> None:
        super().__init__()
        self._cut = cut

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_WatchedHTTPS, cut=self._cut), req)


def post(request: urllib.request.Request, timeout: float, cut: Cut) -> None:
    """Send ``request`` (proxies from the environment apply, as with ``urlopen``) and
    read its answer; ``urllib.error.HTTPError`` for a status of 400 or more. Its
    connection is shut down by ``cut.now()``."""
    opener = urllib.request.build_opener(_HTTPHandler(cut), _HTTPSHandler(cut))
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read(MAX_ANSWER)
    except urllib.error.HTTPError as exc:
        exc.close()  # its connection, now rather than when collected
        raise
