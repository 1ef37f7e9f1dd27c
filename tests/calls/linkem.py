"""A mobile link in user space: joins two TUN devices with delay, loss and a rate limit.

This kernel has no ``sch_netem`` (``tc qdisc add ... netem`` answers
"Specified qdisc kind is unknown"), so the weak-link tests shape the
customer's link here instead: ``scripts/netns.sh wan-up PREFIX tun`` makes a
TUN device ``c0`` in the customer's namespace and ``r1`` in the router's, and
this process opens both (entering each namespace with setns(2)) and moves
every IP packet between them:

- loss: each packet is dropped with probability ``--loss``, independently;
- rate: packets leave one after the other at ``--rate-kbit`` per direction,
  queued behind each other (a queue longer than ``--queue-ms`` drops the
  newcomer, as a carrier's buffer does);
- delay: each packet is delivered ``--delay-ms`` after it has been sent.

Both directions are shaped alike (``--delay-ms`` is one way). Prints
``ready`` once both devices are open, then runs until SIGTERM; on exit prints
one JSON line of counters. Needs root.

    python tests/calls/linkem.py --a NS_C:c0 --b NS_R:r1 --delay-ms 300 --loss 0.05 --rate-kbit 500
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import fcntl
import json
import os
import random
import signal
import struct

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000


def _setns(name: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({name}) failed")
    finally:
        os.close(fd)


def open_tun(netns: str, device: str) -> int:
    """Open the existing TUN ``device`` of namespace ``netns``; the fd keeps working from anywhere."""
    _setns(netns)
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", device.encode(), IFF_TUN | IFF_NO_PI))
    return fd


class Direction:
    def __init__(self, loop: asyncio.AbstractEventLoop, source: int, sink: int, options: argparse.Namespace) -> None:
        self.loop, self.source, self.sink, self.options = loop, source, sink, options
        self.free_at = 0.0  # when the "wire" is free for the next packet
        self.counters = {"packets": 0, "lost": 0, "queue_drops": 0, "delivered": 0}
        self.random = random.Random(options.seed + source)

    def readable(self) -> None:
        while True:
            try:
                packet = os.read(self.source, 65535)
            except BlockingIOError:
                return
            self.counters["packets"] += 1
            if self.random.random() < self.options.loss:
                self.counters["lost"] += 1
                continue
            now = self.loop.time()
            start = max(now, self.free_at)
            if (start - now) * 1000 > self.options.queue_ms:
                self.counters["queue_drops"] += 1
                continue
            transmit = len(packet) * 8 / (self.options.rate_kbit * 1000) if self.options.rate_kbit > 0 else 0.0
            self.free_at = start + transmit
            self.loop.call_at(self.free_at + self.options.delay_ms / 1000, self.deliver, packet)

    def deliver(self, packet: bytes) -> None:
        try:
            os.write(self.sink, packet)
            self.counters["delivered"] += 1
        except OSError:  # the device went down with its namespace
            pass


async def main(options: argparse.Namespace) -> None:
    (a_ns, a_dev), (b_ns, b_dev) = options.a.split(":"), options.b.split(":")
    a, b = open_tun(a_ns, a_dev), open_tun(b_ns, b_dev)
    loop = asyncio.get_running_loop()
    uplink, downlink = Direction(loop, a, b, options), Direction(loop, b, a, options)
    loop.add_reader(a, uplink.readable)
    loop.add_reader(b, downlink.readable)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print("ready", flush=True)
    await stop.wait()
    print(json.dumps({"uplink": uplink.counters, "downlink": downlink.counters}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", required=True, help="NETNS:DEVICE of the customer's side")
    parser.add_argument("--b", required=True, help="NETNS:DEVICE of the router's side")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--loss", type=float, default=0.0)
    parser.add_argument("--rate-kbit", type=float, default=0.0, help="0 = unlimited")
    parser.add_argument("--queue-ms", type=float, default=1000.0)
    parser.add_argument("--seed", type=int, default=22)
    asyncio.run(main(parser.parse_args()))
