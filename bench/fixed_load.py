#!/usr/bin/env python3
"""fixed_load.py: a fixed number of HTTP/1.1 GETs over keep-alive connections, for
proxy_bench.sh's instruction-count mode (MODE=icount). Unlike wrk (which runs for a time),
it sends exactly REQUESTS requests, spread over CONNECTIONS connections, and checks every
answer is a 200 with the whole body (Content-Length or chunked). Speed does not matter: it
drives a proxy that runs under valgrind, and only the proxy's work per request is measured.

    fixed_load.py PORT PATH CONNECTIONS REQUESTS

Prints "requests N errors E" and exits non-zero when any request failed.
"""
import asyncio
import sys


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, chunked, close = None, False, False
    for line in lines[1:]:
        if ":" not in line:
            continue
        name, value = line.split(":", 1)
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
        elif name == "connection" and "close" in value:
            close = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length is not None:
        await reader.readexactly(length)
    return status, close


async def worker(port, path, count, result):
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").encode()
    reader = writer = None
    for _ in range(count):
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
            writer.write(request)
            status, close = await read_response(reader)
            result["ok" if status == 200 else "errors"] += 1
        except (OSError, asyncio.IncompleteReadError, ValueError):
            result["errors"] += 1
            close = True
        if close and writer is not None:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def main():
    port, path, conns, total = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    result = {"ok": 0, "errors": 0}
    per = [total // conns + (1 if i < total % conns else 0) for i in range(conns)]
    await asyncio.gather(*(worker(port, path, n, result) for n in per if n > 0))
    print(f"requests {result['ok']} errors {result['errors']}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
