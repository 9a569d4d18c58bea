"""A reference capability for demos and tests: `echo@1.0.0` returns its input payload unchanged.

Method `fail` answers the capability error `execution failed` (upstream's test text).
"""

from __future__ import annotations

from nats.aio.client import Client

from schemas import capability
from workers.reference.vault import serve_capability
from workers.runtime.bus import Service

ECHO_ID = "echo@1.0.0"
METHODS = ("echo", "fail")


def answer(call: capability.CapabilityCall) -> capability.CapabilityOutcome:
    if call.method == "fail":
        return capability.CapabilityOutcome(error="execution failed")
    return capability.CapabilityOutcome(payload=call.payload)


async def run(nc: Client) -> Service:
    return await serve_capability(
        nc, capability_id=ECHO_ID, methods=METHODS, name="relay-ref-echo", handler=answer
    )
