"""An HTTP proxy in front of the moto S3 server that injects faults at a set rate.

Each request is forwarded unless a fault is drawn for it: a 503 SlowDown, a 500 InternalError,
a connection dropped before the request reaches S3, or (the nasty one) a request that S3 did
apply whose response is then lost. Counts of what was injected are kept so a test can prove
faults really happened.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("slowdown", "internal_error", "drop_before", "drop_after")

_ERRORS = {"slowdown": (503, "SlowDown"), "internal_error": (500, "InternalError")}
_HOP_BY_HOP = ("connection", "expect")
_ERROR_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
    "<Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>"
)


class FaultyS3Proxy:
    """A threaded HTTP proxy to `upstream` (host, port) that fails `rate` of the requests."""

    def __init__(self, upstream: tuple[str, int], seed: int = 0) -> None:
        self.upstream = upstream
        self.rate = 0.0
        self.faults: tuple[str, ...] = FAULTS
        self.injected: Counter[str] = Counter()
        self.forwarded = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultyS3Proxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @contextmanager
    def failing(self, rate: float, faults: tuple[str, ...] = FAULTS) -> Iterator[FaultyS3Proxy]:
        """Inject `faults` into `rate` of the requests for the duration of the block."""
        self.rate, self.faults = rate, faults
        try:
            yield self
        finally:
            self.rate = 0.0

    def _draw(self) -> str | None:
        with self._lock:
            if self.rate and self._rng.random() < self.rate:
                fault = self._rng.choice(self.faults)
                self.injected[fault] += 1
                return fault
            self.forwarded += 1
            return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def handle(self) -> None:
                # The client may hang up on a connection we dropped or answered with an error.
                with contextlib.suppress(ConnectionError):
                    super().handle()

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                fault = proxy._draw()
                if fault == "drop_before":
                    self.close_connection = True
                    return
                if fault in ("slowdown", "internal_error"):
                    status, code = _ERRORS[fault]
                    payload = _ERROR_BODY.format(code=code, message="injected fault").encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                upstream = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                try:
                    headers = {
                        k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP
                    }
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    payload = response.read()
                finally:
                    upstream.close()
                if fault == "drop_after":  # S3 applied the request; its answer is lost
                    self.close_connection = True
                    return
                head = self.command == "HEAD"  # keeps the object's own Content-Length
                skip = {"connection", "transfer-encoding"} | (set() if head else {"content-length"})
                self.send_response(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in skip:
                        self.send_header(key, value)
                if not head:
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if not head:
                    self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        return Handler
