"""Lab's Airflow part: the Airflow REST API over HTTPS, never through a proxy."""

import json
import os
import urllib.error
import urllib.request

from lab.client.waiting import wait_for


class AirflowAccess:
    """Mixed into Lab, which provides cluster, data(name) and ssl_context()."""

    def api(self, base_url=None) -> "Api":
        """The Airflow REST API at the public URL (env AIRFLOW_TEST_API_URL: another URL,
        e.g. one API server while no load balancer is up), not logged in yet."""
        base_url = base_url or os.environ.get("AIRFLOW_TEST_API_URL", self.cluster.public_url)
        admin = self.data(self.cluster.groups["web"][0]).get("airflow_admin_user")
        return Api(base_url, self.ssl_context(), admin)


class ApiError(Exception):
    """An Airflow REST API call that did not answer as expected."""


class Api:
    """The Airflow REST API at `base_url` over HTTPS (never through a proxy), as `admin`."""

    def __init__(self, base_url, context, admin):
        self.base_url = base_url.rstrip("/")
        self.admin = admin
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
        self.token = None

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
        """Log in as `user` (default: the admin user) with `password`."""
        status, answer = self.call(
            "POST", "/auth/token", {"username": user or self.admin, "password": password},
            auth=False,
        )
        if status not in (200, 201):
            raise ApiError(f"login as {user or self.admin}: {status} {answer}")
        self.token = answer["access_token"]

    def unpause(self, dag_id, timeout=300):
        """Unpause `dag_id` once it is parsed."""
        wait_for(f"{dag_id} parsed", lambda: self.call("GET", f"/api/v2/dags/{dag_id}")[0] == 200,
                 timeout=timeout)
        self.json("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id) -> str:
        """A new run of `dag_id`: its id."""
        return self.json("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None})[
            "dag_run_id"
        ]

    def dag_run(self, dag_id, run_id) -> dict:
        return self.json("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")

    def task_instances(self, dag_id, run_id) -> list[dict]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100"
        return self.json("GET", path)["task_instances"]

    def finished(self, dag_id, run_id, timeout, interval=2.0) -> dict:
        """The run's JSON once it has ended (success or failed)."""

        def ended():
            current = self.dag_run(dag_id, run_id)
            return current if current["state"] in ("success", "failed") else None

        return wait_for(f"{dag_id} run {run_id} finished", ended, timeout=timeout,
                        interval=interval)
