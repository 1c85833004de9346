"""Real local receivers for destination tests: an HTTP webhook server that can be told to fail."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kirana.destinations.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER


class WebhookReceiver:
    """A real HTTP server on a free port that records every request.

    ``respond(batch) -> (status, headers)`` decides each answer, so a test can
    make it fail for a while, throttle, or refuse particular records.
    """

    def __init__(
        self,
        respond: Callable[[list[dict[str, Any]]], tuple[int, dict]] | None = None,
        port: int = 0,
    ) -> None:
        self.respond = respond or (lambda batch: (200, {}))
        self.attempts: list[dict[str, Any]] = []  # every request, failed or not
        self.accepted: list[dict[str, Any]] = []  # records of 2xx answers, in arrival order
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                payload = json.loads(body)
                with receiver.lock:
                    status, headers = receiver.respond(payload["batch"])
                    receiver.attempts.append(
                        {
                            "status": status,
                            "body": body,
                            "batch": payload["batch"],
                            "timestamp": self.headers.get(TIMESTAMP_HEADER),
                            "signature": self.headers.get(SIGNATURE_HEADER),
                            "headers": dict(self.headers),
                            "path": self.path,
                        }
                    )
                    if 200 <= status < 300:
                        receiver.accepted.extend(payload["batch"])
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class EchoingReceiver:
    """A real HTTP server that refuses every request and echoes it back in the error body.

    Servers do this (``401: invalid token 'Bearer …' for /hook?api_key=…``), so it is
    how a credential would reach a stored ``last_error`` if Kirana did not scrub it.
    """

    def __init__(self, status: int = 401) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                # what servers echo first: the credential they refused, then the request
                body = json.dumps(
                    {
                        "error": f"refused {self.headers.get('Authorization')}",
                        "path": self.path,
                        "headers": dict(self.headers),
                    }
                ).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
