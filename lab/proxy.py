"""The lab hosts' only way out: a forward proxy to an allow-list of package registries.

Speaks just enough HTTP/1.1 for apt (absolute-URI requests over http, keep-alive, pipelined
requests answered in order) and for pip (CONNECT tunnels for https). A destination outside
the allow-list, or on a port other than 80/443, gets 403. One log line per request.

Standalone (standard library only) so it runs as its own daemon:
    python proxy.py --listen 172.29.213.1 --port 3128 --allow deb.debian.org --allow pypi.org
"""

import argparse
import asyncio
import signal
import sys
import time
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024
CHUNK = 64 * 1024
CONNECT_TIMEOUT = 20
ALLOWED_PORTS = {80, 443}
# Headers that describe one connection, not the message: never forwarded. Transfer-Encoding
# is hop-by-hop too, but bodies are relayed byte for byte, so it stays.
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-connection", "proxy-authorization",
    "proxy-authenticate", "te", "trailer", "upgrade",
}


class HttpError(Exception):
    def __init__(self, status: int, reason: str, detail: str = ""):
        super().__init__(detail or reason)
        self.status, self.reason, self.detail = status, reason, detail


class Message:
    """A parsed request or response head."""

    def __init__(self, raw: bytes):
        lines = raw.decode("latin-1").split("\r\n")
        self.start = lines[0].split(" ", 2)
        if len(self.start) < 2:
            raise HttpError(400, "Bad Request", "malformed start line")
        self.headers = []
        for line in lines[1:]:
            if line:
                name, sep, value = line.partition(":")
                if not sep:
                    raise HttpError(400, "Bad Request", "malformed header")
                self.headers.append((name.strip(), value.strip()))

    def get(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def tokens(self, name: str) -> set[str]:
        return {t.strip().lower() for t in (self.get(name) or "").split(",") if t.strip()}

    def forwarded_headers(self) -> list[tuple[str, str]]:
        # Connection may name more hop-by-hop headers.
        drop = HOP_BY_HOP | self.tokens("connection")
        return [(k, v) for k, v in self.headers if k.lower() not in drop]


def log(*parts) -> None:
    print(time.strftime("%Y-%m-%dT%H:%M:%S"), *parts, flush=True)


async def read_head(reader: asyncio.StreamReader) -> bytes | None:
    """The head of the next message, None at a clean end of stream."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if not error.partial.strip():
            return None
        raise HttpError(400, "Bad Request", "truncated head")
    except asyncio.LimitOverrunError:
        raise HttpError(431, "Request Header Fields Too Large")


async def relay_exact(reader, writer, size: int) -> None:
    while size > 0:
        data = await reader.read(min(size, CHUNK))
        if not data:
            raise ConnectionError("peer closed in the middle of a body")
        writer.write(data)
        await writer.drain()
        size -= len(data)


async def relay_chunked(reader, writer) -> None:
    while True:
        line = await reader.readuntil(b"\r\n")
        writer.write(line)
        size = int(line.split(b";")[0].strip(), 16)
        if size == 0:
            while True:  # trailers, up to the empty line
                line = await reader.readuntil(b"\r\n")
                writer.write(line)
                if line == b"\r\n":
                    break
            await writer.drain()
            return
        await relay_exact(reader, writer, size + 2)  # data + CRLF


async def relay_until_eof(reader, writer) -> None:
    while data := await reader.read(CHUNK):
        writer.write(data)
        await writer.drain()


async def relay_body(message: Message, reader, writer, *, until_eof: bool) -> None:
    if "chunked" in message.tokens("transfer-encoding"):
        await relay_chunked(reader, writer)
    elif message.get("content-length") is not None:
        await relay_exact(reader, writer, int(message.get("content-length")))
    elif until_eof:
        await relay_until_eof(reader, writer)


def head_bytes(start: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [start] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def error_bytes(error: HttpError) -> bytes:
    body = f"{error.status} {error.reason}: {error.detail}\n".encode()
    headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body))), ("Connection", "close")]
    return head_bytes(f"HTTP/1.1 {error.status} {error.reason}", headers) + body


async def close(writer) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except (OSError, asyncio.CancelledError):
        pass


class Proxy:
    def __init__(self, allowed_hosts: list[str], allowed_ports=ALLOWED_PORTS):
        self.allowed = {host.lower().rstrip(".") for host in allowed_hosts}
        self.allowed_ports = set(allowed_ports)

    def check_allowed(self, host: str, port: int) -> None:
        if host.lower().rstrip(".") not in self.allowed or port not in self.allowed_ports:
            raise HttpError(403, "Forbidden", f"{host}:{port} is not on the lab proxy's allow-list")

    async def open_upstream(self, host: str, port: int):
        try:
            return await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as error:
            raise HttpError(502, "Bad Gateway", f"cannot reach {host}:{port}: {error}")

    async def handle_client(self, reader, writer) -> None:
        peer = writer.get_extra_info("peername")
        client = peer[0] if peer else "?"
        upstreams: dict[tuple[str, int], tuple] = {}
        try:
            while True:
                raw = await read_head(reader)
                if raw is None:
                    break
                request = Message(raw)
                if request.start[0].upper() == "CONNECT":
                    await self.tunnel(request, reader, writer, client)
                    break
                if not await self.forward(request, reader, writer, upstreams, client):
                    break
        except HttpError as error:
            log(client, "refused", error.status, error.detail)
            try:
                writer.write(error_bytes(error))
                await writer.drain()
            except OSError:
                pass
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
            log(client, "connection error:", repr(error))
        finally:
            for _, upstream_writer in upstreams.values():
                await close(upstream_writer)
            await close(writer)

    async def tunnel(self, request: Message, reader, writer, client: str) -> None:
        host, _, port = request.start[1].rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit():
            raise HttpError(400, "Bad Request", f"bad CONNECT target {request.start[1]!r}")
        self.check_allowed(host, int(port))
        upstream_reader, upstream_writer = await self.open_upstream(host, int(port))
        log(client, "CONNECT", request.start[1], 200)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()

        async def pump(source, sink):
            try:
                await relay_until_eof(source, sink)
                if sink.can_write_eof():
                    sink.write_eof()  # pass the half-close on
            except OSError:
                sink.close()

        try:
            await asyncio.gather(pump(reader, upstream_writer), pump(upstream_reader, writer))
        finally:
            await close(upstream_writer)

    async def forward(self, request: Message, reader, writer, upstreams, client: str) -> bool:
        """Forward one absolute-URI request; True if the client connection stays open."""
        method, target = request.start[0], request.start[1]
        url = urlsplit(target)
        if url.scheme != "http" or not url.hostname:
            raise HttpError(400, "Bad Request", f"expected an absolute http:// URI, got {target!r}")
        host, port = url.hostname, url.port or 80
        self.check_allowed(host, port)
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        headers = request.forwarded_headers()
        if request.get("host") is None:
            headers.insert(0, ("Host", url.netloc))
        outgoing = head_bytes(f"{method} {path} HTTP/1.1", headers)
        has_body = request.get("content-length") is not None or request.get("transfer-encoding")

        key = (host.lower(), port)
        reused = key in upstreams
        if not reused:
            upstreams[key] = await self.open_upstream(host, port)
        upstream_reader, upstream_writer = upstreams[key]
        upstream_writer.write(outgoing)
        await relay_body(request, reader, upstream_writer, until_eof=False)
        await upstream_writer.drain()
        raw = await read_head(upstream_reader)
        if raw is None and reused and not has_body:
            # The origin closed the idle keep-alive connection: once more on a fresh one.
            await close(upstream_writer)
            upstreams[key] = await self.open_upstream(host, port)
            upstream_reader, upstream_writer = upstreams[key]
            upstream_writer.write(outgoing)
            await upstream_writer.drain()
            raw = await read_head(upstream_reader)
        if raw is None:
            raise HttpError(502, "Bad Gateway", f"{host}:{port} closed without answering")
        response = Message(raw)
        while response.start[1].startswith("1") and response.start[1] != "101":
            writer.write(raw)  # interim (100 Continue): pass on, the real answer follows
            raw = await read_head(upstream_reader)
            if raw is None:
                raise HttpError(502, "Bad Gateway", f"{host}:{port} closed mid-response")
            response = Message(raw)
        status = response.start[1]

        no_body = method.upper() == "HEAD" or status in ("204", "304")
        framed = "chunked" in response.tokens("transfer-encoding") or response.get("content-length") is not None
        upstream_closes = "close" in response.tokens("connection") or (not no_body and not framed)
        client_closes = (
            "close" in request.tokens("connection")
            or request.start[2:] == ["HTTP/1.0"] and "keep-alive" not in request.tokens("connection")
            or (not no_body and not framed)  # body ends at EOF: so must the client's stream
        )
        headers = response.forwarded_headers()
        if client_closes:
            headers.append(("Connection", "close"))
        writer.write(head_bytes(" ".join(response.start), headers))
        if not no_body:
            await relay_body(response, upstream_reader, writer, until_eof=True)
        await writer.drain()
        log(client, method, target, status)
        if upstream_closes:
            await close(upstreams.pop(key)[1])
        return not client_closes


async def serve(listen: str, port: int, allowed: list[str]) -> None:
    proxy = Proxy(allowed)
    server = await asyncio.start_server(proxy.handle_client, listen, port, limit=MAX_HEAD)
    log(f"listening on {listen}:{port}, allowed: {' '.join(sorted(proxy.allowed))}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()
    log("stopped")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="The lab's allow-listing forward proxy.")
    parser.add_argument("--listen", required=True, help="address to bind (the lab bridge's)")
    parser.add_argument("--port", type=int, default=3128)
    parser.add_argument("--allow", action="append", default=[], help="destination host name")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.listen, args.port, args.allow))
    except OSError as error:
        sys.exit(f"proxy: cannot listen on {args.listen}:{args.port}: {error}")


if __name__ == "__main__":
    main()
