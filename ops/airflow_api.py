"""Airflow's REST API at the cluster's public URL, as the operations commands (and the lab's
tests and benchmarks) call it: HTTPS verified against the load balancer's CA, never through a
proxy, a JWT from `POST /auth/token`."""

import json
import ssl
import urllib.error
import urllib.request


class ApiError(Exception):
    """An Airflow REST API call that did not answer as expected."""


def ssl_context(ca_path) -> ssl.SSLContext:
    """Verifies the load balancer's certificate: the cluster's CA (cluster.tls.ca_path), or
    the system's trust store when the certificate is publicly trusted (None)."""
    return ssl.create_default_context(cafile=str(ca_path) if ca_path else None)


class AirflowApi:
    """The REST API at `base_url` (e.g. cluster.public_url), logged in as `user` by login()."""

    def __init__(self, base_url: str, context: ssl.SSLContext, user: str):
        self.base_url = base_url.rstrip("/")
        self.user = user
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
        self.token = None

    @classmethod
    def of(cls, cluster) -> "AirflowApi":
        """The API at `cluster`'s public URL, as its admin user (ops commands)."""
        return cls(cluster.public_url, ssl_context(cluster.tls.ca_path),
                   cluster.settings["airflow_admin_user"])

    def call(self, method, path, body=None, auth=True, timeout=30):
        """(status, JSON answer, or the text of an error answer)."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            self.base_url + path, method=method, headers=headers,
            data=None if body is None else json.dumps(body).encode(),
        )
        try:
            with self.opener.open(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")

    def json(self, method, path, body=None, ok=(200,)):
        """The answer of a call that must answer with a status in `ok`; else ApiError."""
        status, answer = self.call(method, path, body)
        if status not in ok:
            raise ApiError(f"{method} {path}: {status} {answer}")
        return answer

    def login(self, password, user=None):
        """Log in as `user` (default: the one given at creation) with `password`."""
        user = user or self.user
        status, answer = self.call(
            "POST", "/auth/token", {"username": user, "password": password}, auth=False
        )
        if status not in (200, 201):
            raise ApiError(f"login as {user}: {status} {answer}")
        self.token = answer["access_token"]

    def collection(self, path, key, page=100):
        """Every item of a paged collection (`GET path?limit=&offset=`, items under `key`)."""
        items, offset = [], 0
        while True:
            separator = "&" if "?" in path else "?"
            answer = self.json("GET", f"{path}{separator}limit={page}&offset={offset}")
            items += answer[key]
            offset += page
            if offset >= answer["total_entries"] or not answer[key]:
                return items
