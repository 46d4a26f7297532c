"""Lab's Airflow part: the Airflow REST API over HTTPS, never through a proxy."""

import os

from lab.client.waiting import wait_for
from ops.airflow_api import AirflowApi, ApiError  # noqa: F401 (re-exported)


class AirflowAccess:
    """Mixed into Lab, which provides cluster, data(name) and ssl_context()."""

    def api(self, base_url=None) -> "Api":
        """The Airflow REST API at the public URL (env AIRFLOW_TEST_API_URL: another URL,
        e.g. one API server while no load balancer is up), not logged in yet."""
        base_url = base_url or os.environ.get("AIRFLOW_TEST_API_URL", self.cluster.public_url)
        return Api(base_url, self.ssl_context(), self.cluster.settings["airflow_admin_user"])

    def admin_api(self, timeout=300) -> "Api":
        """api(), once it answers (the load balancer may still be counting an API server up),
        logged in as the admin."""
        client = self.api()
        wait_for("the API answers", lambda: client.call("GET", "/api/v2/version",
                                                        auth=False)[0] == 200, timeout=timeout)
        client.login(self.secrets["admin_password"])
        return client


class Api(AirflowApi):
    """ops' REST client with what the tests and benchmarks do with DAGs."""

    def unpause(self, dag_id, timeout=300):
        """Unpause `dag_id` once it is parsed."""
        wait_for(f"{dag_id} parsed", lambda: self.call("GET", f"/api/v2/dags/{dag_id}")[0] == 200,
                 timeout=timeout)
        self.json("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def pause(self, dag_id):
        """Pause `dag_id`: the scheduler creates no new run of it and queues none of its tasks."""
        self.json("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": True})

    def trigger(self, dag_id, conf=None) -> str:
        """A new run of `dag_id` (with the run configuration `conf`): its id."""
        body = {"logical_date": None, **({"conf": conf} if conf else {})}
        return self.json("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)["dag_run_id"]

    def dag_run(self, dag_id, run_id) -> dict:
        return self.json("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")

    def task_instances(self, dag_id, run_id) -> list[dict]:
        """Every task instance of the run (mapped ones one per index)."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        return self.collection(path, "task_instances")

    def unsuccessful(self, dag_id, run_id, log_chars=1500) -> list[dict]:
        """Each task instance of the run that did not succeed, with the end of its last
        try's log: what a failed run's assertion shows."""
        found = []
        for ti in self.task_instances(dag_id, run_id):
            if ti["state"] == "success":
                continue
            log = ""
            if ti.get("try_number"):
                path = (f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}"
                        f"/logs/{ti['try_number']}?full_content=true")
                status, body = self.call("GET", path)
                log = str(body)[-log_chars:] if status == 200 else f"log: HTTP {status}"
            found.append({key: ti.get(key) for key in
                          ("task_id", "map_index", "state", "try_number", "hostname")}
                         | {"log_end": log})
        return found

    def finished(self, dag_id, run_id, timeout, interval=2.0) -> dict:
        """The run's JSON once it has ended (success or failed)."""

        def ended():
            current = self.dag_run(dag_id, run_id)
            return current if current["state"] in ("success", "failed") else None

        return wait_for(f"{dag_id} run {run_id} finished", ended, timeout=timeout,
                        interval=interval)
