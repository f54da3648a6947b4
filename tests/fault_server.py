"""A loopback HTTP server that misbehaves on purpose, one behaviour per path, every one of them bounded.

`tests.conftest.FileServer` always announces the right Content-Length before it misbehaves; the faults here
need more freedom (no length, a wrong length, no answer at all), so this server writes its own headers.

| path          | what the client gets                                                                  |
|---------------|---------------------------------------------------------------------------------------|
| `/good`       | the body, with its length                                                             |
| `/truncated`  | the full length announced, half the body, then the connection closes                  |
| `/wrong`      | other bytes of the same length                                                        |
| `/slow`       | half the body, then the rest once `go_on` is set (so two downloads surely overlap)    |
| `/gone`       | a third of the body, then the whole server shuts down                                 |
| `/trickle`    | the full length announced, then 2 bytes every 0.2 s                                   |
| `/endless`    | no length announced, then bytes without end                                           |
| `/too-long`   | a Content-Length 1000 bytes larger than the body's                                    |
| `/stall`      | the full length announced, a quarter of the body, then silence                        |
| `/silent`     | the connection is accepted, but no answer ever comes (not even the status line)       |
| anything else | 404                                                                                   |

Every endless or silent behaviour stops when the client goes away or when the server closes, and after
`MAX_SECONDS` at the latest, so a test can never hang on it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_SECONDS = 30.0


class FaultServer:
    """Serve `body` on 127.0.0.1 in the ways listed above; `hits` counts GET requests per path."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.hits: Counter[str] = Counter()
        self.closed = threading.Event()
        self.go_on = threading.Event()  # lets `/slow` send its second half
        self.go_on.set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                server.hits[self.path] += 1
                behaviour = server.behaviours().get(self.path)
                if behaviour is None:
                    self.send_error(404, "Not Found")
                    return
                try:
                    behaviour(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as it should

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def behaviours(self) -> dict[str, Callable[[BaseHTTPRequestHandler], None]]:
        return {
            "/good": lambda h: self._answer(h, len(self.body), self.body),
            "/truncated": lambda h: self._answer(h, len(self.body), self.body[: len(self.body) // 2]),
            "/wrong": lambda h: self._answer(h, len(self.body), bytes(255 - b for b in self.body)),
            "/slow": self._slow,
            "/gone": self._gone,
            "/trickle": self._trickle,
            "/endless": self._endless,
            "/too-long": lambda h: self._answer(h, len(self.body) + 1000, self.body + bytes(1000)),
            "/stall": self._stall,
            "/silent": lambda h: self._wait(MAX_SECONDS),
        }

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.closed.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- behaviours -----------------------------------------------------------------------------------

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, length: int | None, content: bytes) -> None:
        handler.send_response(200)
        if length is not None:
            handler.send_header("Content-Length", str(length))
        handler.end_headers()
        handler.wfile.write(content)
        handler.wfile.flush()

    def _wait(self, seconds: float) -> bool:
        """Sleep, but wake when the server closes; True while the server is still open."""
        return not self.closed.wait(seconds)

    def _slow(self, handler: BaseHTTPRequestHandler) -> None:
        half = len(self.body) // 2
        self._answer(handler, len(self.body), self.body[:half])
        if self.go_on.wait(MAX_SECONDS) and not self.closed.is_set():
            handler.wfile.write(self.body[half:])
            handler.wfile.flush()

    def _gone(self, handler: BaseHTTPRequestHandler) -> None:
        self._answer(handler, len(self.body), self.body[: len(self.body) // 3])
        threading.Thread(target=self.close).start()  # the connection closes and nobody answers again

    def _trickle(self, handler: BaseHTTPRequestHandler) -> None:
        self._answer(handler, len(self.body), b"")
        started = time.monotonic()
        for start in range(0, len(self.body), 2):
            if time.monotonic() - started > MAX_SECONDS or not self._wait(0.2):
                return
            handler.wfile.write(self.body[start : start + 2])
            handler.wfile.flush()

    def _endless(self, handler: BaseHTTPRequestHandler) -> None:
        self._answer(handler, None, b"")
        started = time.monotonic()
        while time.monotonic() - started < MAX_SECONDS and not self.closed.is_set():
            handler.wfile.write(self.body)
            handler.wfile.flush()

    def _stall(self, handler: BaseHTTPRequestHandler) -> None:
        self._answer(handler, len(self.body), self.body[: len(self.body) // 4])
        self._wait(MAX_SECONDS)
