#!/usr/bin/env python3
"""A connection flood against a sluice listener, with the node's RSS.

    bench/flood.py --listen 127.0.0.1:8000 --pid PID [--conns 9000]

Opens --conns client connections (in batches, all held at once), sends
one request on each and a second on every other one (keep-alive), waits
for every answer, then closes them all. Prints the node's VmRSS before,
at its peak (sampled every 100 ms) and --after seconds after the close.
"""
import argparse
import asyncio
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def request(reader, writer):
    writer.write(b"GET / HTTP/1.1\r\nhost: flood\r\n\r\n")
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--conns", type=int, default=9000)
    p.add_argument("--after", type=float, default=30.0)
    a = p.parse_args()
    host, port = a.listen.rsplit(":", 1)
    before = rss_kib(a.pid)
    peak = before
    done = False

    async def sample():
        nonlocal peak
        while not done:
            peak = max(peak, rss_kib(a.pid))
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample())
    conns = []
    for i in range(0, a.conns, 500):
        batch = [asyncio.open_connection(host, int(port)) for _ in range(min(500, a.conns - i))]
        conns += await asyncio.gather(*batch)
    statuses = await asyncio.gather(*(request(r, w) for r, w in conns))
    statuses += await asyncio.gather(*(request(r, w) for r, w in conns[::2]))
    for _, w in conns:
        w.close()
    await asyncio.sleep(0.5)
    done = True
    await sampler
    closed = time.monotonic()
    ok = sum(1 for s in statuses if s == 200)
    print(f"connections {len(conns)}, requests {len(statuses)}, 200s {ok}")
    print(f"rss before {before} KiB, peak {peak} KiB")
    for t in (1, 5, 10, 20, a.after):
        await asyncio.sleep(max(0.0, closed + t - time.monotonic()))
        print(f"rss {t:>4.0f} s after close {rss_kib(a.pid)} KiB")


asyncio.run(main())
