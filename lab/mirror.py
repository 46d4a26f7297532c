"""A pull-through Debian mirror on the lab's bridge, for the deploy's apt_mirror setting:
`GET /<archive>/<path>` answers with what the upstream archive (deb.debian.org) serves at
the same path, fetched through the lab's allow-listing proxy. The hosts then reach it
directly, like a mirror on their own network. It keeps every request it answered."""

import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM = "http://deb.debian.org"


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def do_GET(self):  # noqa: N802 (http.server's name)
        try:
            with self.server.opener.open(UPSTREAM + self.path, timeout=120) as upstream:
                status, body = upstream.status, upstream.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, b""
        except OSError:
            status, body = 502, b""
        self.server.requests.append((self.client_address[0], self.path, status))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # the requests are kept, not printed
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, proxy):
        super().__init__(address, _Handler)
        self.requests: list[tuple[str, str, int]] = []
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({"http": proxy, "https": proxy})
        )


class Mirror:
    """`with Mirror(address, port, proxy) as mirror:` serves until the block ends;
    `mirror.url` is its base, `mirror.requests` (client, path, status) what it answered."""

    def __init__(self, address: str, port: int, proxy: str):
        self.url = f"http://{address}:{port}"
        self._server = _Server((address, port), proxy)

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        return list(self._server.requests)

    def __enter__(self) -> "Mirror":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
