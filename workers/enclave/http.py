"""Sending a request to the gateway's HTTP front (standard library only, synchronous).

The gateway answers every JSON-RPC outcome with a JSON-RPC body, errors included (400, 429, 500,
504...), so the body is returned whatever the HTTP status; only a missing body is a transport
failure. Inside a Nitro enclave there is no network: point `url` at the vsock proxy the enclave
uses to reach the gateway.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from workers.enclave.errors import TransportError

MAX_ANSWER_BYTES = 16 << 20


class HttpTransport:
    def __init__(self, url: str, *, timeout_s: float = 35.0) -> None:
        # A little above the gateway's 30 s request timeout, so its -32000 answer arrives.
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._url = url
        self._timeout = timeout_s

    def send(self, body: bytes) -> bytes:
        request = urllib.request.Request(
            self._url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return bytes(response.read(MAX_ANSWER_BYTES))
        except urllib.error.HTTPError as exc:
            answer = exc.read(MAX_ANSWER_BYTES)
            if answer:
                return bytes(answer)
            raise TransportError(f"gateway answered HTTP {exc.code} without a body") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise TransportError(f"cannot reach the gateway at {self._url}: {exc}") from exc
