"""Lab's worker part: each worker host's autoscaler (over SSH) and the Helm chart's KEDA
query on a scheduler host, to check the autoscalers' broker count against it."""

import json
import shlex
import textwrap

from lab.client.waiting import wait_for

COMMAND = "airflow-cluster-autoscaler"
# The anchor: the official Helm chart's KEDA rule, run where the metadata database is reachable.
KEDA_QUERY = ("SELECT COUNT(*), ceil(COUNT(*)::decimal / {concurrency}) FROM task_instance "
              "WHERE (state = 'running' OR state = 'queued') AND queue IN ({queues})")


class WorkerAccess:
    """Mixed into Lab, which provides cluster, data(name) and run(name, command)."""

    def autoscaler(self, name, *args, timeout=900):
        """`airflow-cluster-autoscaler ARGS` on worker host `name`: CompletedProcess."""
        return self.run(name, shlex.join([COMMAND, *args]), timeout=timeout)

    def autoscaler_status(self, name) -> dict:
        done = self.autoscaler(name, "status")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def broker_load(self, name) -> int:
        """Queued + running tasks of the worker queues, as host `name`'s autoscaler reads them."""
        done = self.autoscaler(name, "load")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["load"]

    def instances(self, name) -> list[int]:
        """The instance numbers running on `name` (stopping ones excluded)."""
        return self.autoscaler_status(name)["running"]

    def keda_count(self, scheduler) -> tuple[int, int]:
        """(queued + running task instances of the worker queues, the KEDA rule's worker
        count) from the metadata database, asked on host `scheduler`."""
        settings = self.data(scheduler)
        queues = ", ".join(f"'{q}'" for q in self.cluster.worker_queues)
        query = KEDA_QUERY.format(concurrency=settings.worker_concurrency, queues=queues)
        program = textwrap.dedent(f"""
            import configparser, sqlalchemy
            config = configparser.ConfigParser(interpolation=configparser.BasicInterpolation())
            config.read("{settings.airflow_home}/airflow.cfg")
            engine = sqlalchemy.create_engine(config.get("database", "sql_alchemy_conn"))
            with engine.connect() as connection:
                count, workers = connection.execute(sqlalchemy.text({query!r})).one()
            print(count, int(workers))
        """)
        done = self.run(scheduler, f"{settings.airflow_venv}/bin/python -c {shlex.quote(program)}")
        assert done.returncode == 0, done.stderr
        count, workers = done.stdout.split()
        return int(count), int(workers)

    def warm_stop_seconds(self, name, number) -> float:
        """How long instance `number`'s last stop lasted ("Stopping" -> "Stopped" in the
        journal: systemd forgets an inactive instance's timestamps), in s."""
        unit = f"airflow-worker@{number}.service"
        journal = self.run(name, f"journalctl -u {unit} -o short-unix --no-pager "
                                 "SYSLOG_IDENTIFIER=systemd").stdout.splitlines()
        stopping = [i for i, line in enumerate(journal) if " Stopping " in line]
        assert stopping, f"{unit} on {name} never stopped"
        stopped = next(line for line in journal[stopping[-1]:] if " Stopped " in line)
        return float(stopped.split()[0]) - float(journal[stopping[-1]].split()[0])

    def wait_idle(self, timeout=600):
        """No load in the broker and no instance stopping on any worker host, whatever their
        modes and counts: a test that fixes the counts itself need not wait for the rest."""

        def idle():
            if any(self.autoscaler_status(name)["stopping"]
                   for name in self.cluster.groups["worker"]):
                return False
            return self.broker_load(self.cluster.groups["worker"][0]) == 0

        wait_for("no load and no worker instance stopping", idle, timeout=timeout, interval=2)

    def wait_at_rest(self, timeout=600):
        """Every worker host autoscaling, at its minimum, nothing stopping, no load."""

        def at_rest():
            for name in self.cluster.groups["worker"]:
                status = self.autoscaler_status(name)
                if (status["mode"] != "auto" or status["stopping"]
                        or len(status["running"]) != status["min_instances"]):
                    return False
            return self.broker_load(self.cluster.groups["worker"][0]) == 0

        wait_for("every worker host at rest at its minimum", at_rest, timeout=timeout,
                 interval=3)
