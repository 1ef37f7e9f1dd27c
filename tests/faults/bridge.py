"""A TCP bridge into a network namespace through a Unix socket (the filesystem is shared, the network is not).

The Janus fault test runs Janus inside a namespace (tests/calls/conftest.py:
WebRTC there needs 127.0.0.1 on a non-loopback interface), while the test
process, the platform's server side, stays outside and must reach Janus'
API as a dispatcher would. Two halves, both printing ``ready`` once
listening:

    ip netns exec NS python tests/faults/bridge.py inside --unix PATH --port 8188
    python tests/faults/bridge.py outside --unix PATH --port FREE_PORT

When Janus dies, connections through the bridge are refused or closed, as
they would be to the real thing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()


async def _join(
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    connect: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] | object,
) -> None:
    reader, writer = client
    try:
        upstream_reader, upstream_writer = await connect  # type: ignore[misc]
    except OSError:
        writer.close()
        return
    await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("side", choices=("inside", "outside"))
    parser.add_argument("--unix", required=True)
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    if options.side == "inside":

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _join((reader, writer), asyncio.open_connection("127.0.0.1", options.port))

        server = await asyncio.start_unix_server(handle, path=options.unix)
    else:

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _join((reader, writer), asyncio.open_unix_connection(options.unix))

        server = await asyncio.start_server(handle, "127.0.0.1", options.port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
