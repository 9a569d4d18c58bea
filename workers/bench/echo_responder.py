"""The raw NATS request/reply echo that `relay bench pipeline` sets beside the node.

Its own process, like each actor, answering with plain `nc.subscribe` + `nc.publish` (no
service machinery, no decoding): the transport floor one request/reply hop cannot beat.
Run as `python -m workers.bench.echo_responder URL SUBJECT`; prints `ready` once subscribed and
stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from nats.aio.msg import Msg

from workers.runtime.bus import connect
from workers.runtime.loop import run_loop


async def serve(url: str, subject: str) -> None:
    nc = await connect(url, actor="bench-echo")

    async def echo(msg: Msg) -> None:
        await nc.publish(msg.reply, msg.data)

    await nc.subscribe(subject, queue="bench-echo", cb=echo)
    await nc.flush()
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await nc.drain()


if __name__ == "__main__":
    run_loop(serve(sys.argv[1], sys.argv[2]))
