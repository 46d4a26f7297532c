"""The lab proxy against a local origin server: no traffic leaves loopback."""

import asyncio
import http.client

import pytest

from lab.proxy import Proxy

BODY = b"x" * 100_000


async def _origin(reader, writer):
    """A tiny HTTP/1.1 origin: /fixed (Content-Length), /chunked, /eof (body ends at close)."""
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            break
        request_line = head.split(b"\r\n", 1)[0].decode()
        method, path, _ = request_line.split(" ")
        seen = head.decode().lower()
        assert "proxy-connection" not in seen, "hop-by-hop header forwarded"
        if path == "/fixed":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY)
        elif path == "/chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for piece in (b"hello ", b"chunked ", b"world"):
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            writer.write(b"0\r\n\r\n")
        elif path == "/eof":
            writer.write(b"HTTP/1.1 200 OK\r\n\r\nuntil-eof")
            await writer.drain()
            break
        else:
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
    writer.close()


def _with_proxy(client):
    """Run client(proxy_port, origin_port) in a thread while proxy and origin serve."""

    async def main():
        origin = await asyncio.start_server(_origin, "127.0.0.1", 0)
        origin_port = origin.sockets[0].getsockname()[1]
        proxy = Proxy(["127.0.0.1"], allowed_ports={origin_port})
        server = await asyncio.start_server(proxy.handle_client, "127.0.0.1", 0)
        proxy_port = server.sockets[0].getsockname()[1]
        async with origin, server:
            return await asyncio.to_thread(client, proxy_port, origin_port)

    return asyncio.run(main())


def test_absolute_uri_requests_share_one_keepalive_connection():
    def client(proxy_port, origin_port):
        connection = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=10)
        bodies = []
        for path in ("/fixed", "/chunked", "/fixed"):
            connection.request("GET", f"http://127.0.0.1:{origin_port}{path}",
                               headers={"Proxy-Connection": "keep-alive"})
            response = connection.getresponse()
            bodies.append((response.status, response.read()))
        return bodies

    assert _with_proxy(client) == [(200, BODY), (200, b"hello chunked world"), (200, BODY)]


def test_body_until_eof_closes_the_client_connection():
    def client(proxy_port, origin_port):
        connection = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=10)
        connection.request("GET", f"http://127.0.0.1:{origin_port}/eof")
        response = connection.getresponse()
        return response.status, response.read(), response.getheader("Connection")

    assert _with_proxy(client) == (200, b"until-eof", "close")


def test_connect_tunnel_to_an_allowed_host():
    def client(proxy_port, origin_port):
        connection = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=10)
        connection.set_tunnel("127.0.0.1", origin_port)
        connection.request("GET", "/fixed")
        response = connection.getresponse()
        return response.status, response.read()

    assert _with_proxy(client) == (200, BODY)


def test_other_destinations_get_403():
    def client(proxy_port, origin_port):
        results = []
        connection = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=10)
        connection.request("GET", "http://not-allowed.invalid/")
        results.append(connection.getresponse().status)
        # An allowed host on a port that is not allowed.
        connection = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=10)
        connection.request("GET", f"http://127.0.0.1:{origin_port + 1}/")
        results.append(connection.getresponse().status)
        connection = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=10)
        connection.set_tunnel("not-allowed.invalid", 443)
        with pytest.raises(OSError, match="403"):
            connection.request("GET", "/")
        return results

    assert _with_proxy(client) == [403, 403]


def test_origin_form_request_is_refused():
    def client(proxy_port, origin_port):
        connection = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=10)
        connection.request("GET", "/not-absolute")
        return connection.getresponse().status

    assert _with_proxy(client) == 400
