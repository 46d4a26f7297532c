"""Which versioned Airflow venvs (<airflow_venv>-<version>, tasks/airflow.py) the processes
running on a host come from: the deploy restarts the services of a host where any process
still runs from another venv than the one in use, so a run that failed after switching the
venv (or an upgrade whose rolls stopped half-way) is finished by the next one."""

import shlex

from pyinfra.api import FactBase


class RunningVenvs(FactBase):
    """The venvs named `<link>-<version>` that running processes have files mapped from, e.g.
    ["/opt/airflow/venv-3.3.2"]. Read from /proc/*/maps (real paths, whatever title a
    process gives itself): every Airflow process maps its venv's compiled modules."""

    @staticmethod
    def default():
        return []

    def command(self, link):
        prefix = shlex.quote(f"{link.rstrip('/')}-")
        return (
            "cat /proc/[0-9]*/maps 2>/dev/null | "
            f"awk -v p={prefix} 'index($6, p) == 1 "
            "{ split(substr($6, length(p) + 1), rest, \"/\"); print p rest[1] }' | sort -u"
        )

    def process(self, output):
        return [line.strip() for line in output if line.strip()]
