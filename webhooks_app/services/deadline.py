"""One total deadline per send, enforced by a watchdog thread that shuts the send's sockets down.

A socket timeout bounds each read, not the whole answer: an endpoint that trickles a byte a second would
never time out. The watchdog cuts the connection whatever it is blocked in (connect, TLS, send, read).
"""

import heapq
import os
import socket
import threading
import time


class Watchdog:
    """One thread per process that fires deadlines in time order (cheaper than a timer thread per send)."""

    def __init__(self):
        self._condition = threading.Condition()
        self._pending: list[tuple[float, int, Deadline]] = []
        self._counter = 0
        self._thread: threading.Thread | None = None

    def schedule(self, deadline: "Deadline") -> None:
        with self._condition:
            self._counter += 1
            heapq.heappush(self._pending, (deadline.expires_at, self._counter, deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="delivery-watchdog", daemon=True)
                self._thread.start()
            if self._pending[0][2] is deadline:
                # Only a new earliest deadline changes how long the watchdog sleeps; sends share one
                # timeout, so this is rare, and the watchdog thread is not woken on every send.
                self._condition.notify()

    def _run(self) -> None:
        with self._condition:
            while True:
                while self._pending and self._pending[0][2].finished:
                    heapq.heappop(self._pending)
                if not self._pending:
                    self._condition.wait(timeout=60)
                    continue
                wait = self._pending[0][0] - time.monotonic()
                if wait > 0:
                    self._condition.wait(timeout=wait)
                    continue
                _, _, deadline = heapq.heappop(self._pending)
                deadline.fire()


_watchdog = Watchdog()


class Deadline:
    """Shuts every socket of one send down when its time is up, whatever the socket is blocked in."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expires_at = time.monotonic() + seconds
        self.expired = False
        self.finished = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return max(0.001, self.expires_at - time.monotonic())

    def watch(self, sock: socket.socket) -> None:
        # A duplicate descriptor survives the TLS wrap (which detaches the original object) and
        # works for TLS sockets too (which refuse dup()); shutdown() on it cuts the one connection.
        with self._lock:
            self._sockets.append(socket.socket(fileno=os.dup(sock.fileno())))
            if self.expired:
                self._shutdown_all()

    def fire(self) -> None:
        with self._lock:
            if self.finished:
                return
            self.expired = True
            self._shutdown_all()

    def _shutdown_all(self) -> None:
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self):
        _watchdog.schedule(self)
        _current.deadline = self
        return self

    def __exit__(self, *exc_info):
        _current.deadline = None
        with self._lock:
            self.finished = True
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


_current = threading.local()


def watch_current(sock: socket.socket) -> None:
    """Put a socket under this thread's deadline (the send in progress), if any."""
    deadline = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.watch(sock)
