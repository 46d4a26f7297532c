"""Lab's DAG delivery part: a DAG folder of the control machine to deploy instead of dags/,
a Git server on a lab host for the Git DAG bundle, and waits on what the API lists."""

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from cluster.dag_sources import GIT_BUNDLE, generated_key_path  # noqa: F401 (GIT_BUNDLE re-exported)
from cluster.deploy_key import ensure_deploy_key, public_key_line
from cluster.paths import project_path
from lab.client.runs import PROJECT
from lab.client.waiting import wait_for

# A DAG of `tasks` (ids) that each sleep a second, as a file the DAG processors parse.
DAG_TEMPLATE = '''\
"""A DAG made by the lab's DAG delivery checks."""

import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG("{dag_id}", schedule=None, start_date=datetime.datetime(2026, 1, 1), catchup=False):
{tasks}
'''


def dag_source(dag_id, *tasks) -> str:
    body = "\n".join(f'    BashOperator(task_id="{t}", bash_command="sleep 1")' for t in tasks)
    return DAG_TEMPLATE.format(dag_id=dag_id, tasks=body)


class SyncedFolder:
    """A copy of one of the repository's synced folders (dags/, plugins/) in a scratch dir,
    deployed with `--data <setting>=<path>`; files are added, changed and removed in it."""

    def __init__(self, folder="dags", setting="dags_dir"):
        self.setting = setting
        self.path = Path(tempfile.mkdtemp(prefix=f"lab-{folder}-"))
        shutil.copytree(PROJECT / folder, self.path, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
        self.path.chmod(0o755)

    def write(self, name, text):
        (self.path / name).write_text(text)

    def remove(self, name):
        (self.path / name).unlink()

    def data(self) -> list[str]:
        return ["--data", f"{self.setting}={self.path}"]

    def cleanup(self):
        shutil.rmtree(self.path, ignore_errors=True)


def plugin_folder() -> SyncedFolder:
    return SyncedFolder("plugins", "plugins_dir")


# An Airflow plugin that only has a name: what GET /api/v2/plugins lists.
PLUGIN_TEMPLATE = '''\
"""A plugin made by the lab's delivery checks."""

from airflow.plugins_manager import AirflowPlugin


class {cls}(AirflowPlugin):
    name = "{name}"
'''


def plugin_source(name) -> str:
    return PLUGIN_TEMPLATE.format(cls="".join(w.title() for w in name.split("_")), name=name)


class DagWaits:
    """What the API lists about DAGs, and how long it took to list it."""

    def __init__(self, api):
        self.api = api

    def dag(self, dag_id) -> dict | None:
        status, answer = self.api.call("GET", f"/api/v2/dags/{dag_id}")
        return answer if status == 200 else None

    def tasks(self, dag_id) -> set[str]:
        status, answer = self.api.call("GET", f"/api/v2/dags/{dag_id}/tasks")
        return {t["task_id"] for t in answer["tasks"]} if status == 200 else set()

    def import_errors(self) -> list[dict]:
        return self.api.collection("/api/v2/importErrors", "import_errors")

    def seconds_until(self, what, predicate, timeout) -> float:
        """Seconds until predicate() holds (AssertionError after `timeout`)."""
        start = time.monotonic()
        wait_for(what, predicate, timeout=timeout, interval=0.5)
        return time.monotonic() - start

    def listed(self, dag_id, timeout, bundle=None) -> float:
        def active():
            dag = self.dag(dag_id)
            return dag and not dag["is_stale"] and (bundle is None or dag["bundle_name"] == bundle)

        return self.seconds_until(f"DAG {dag_id} listed", active, timeout)

    def has_task(self, dag_id, task_id, timeout) -> float:
        return self.seconds_until(f"task {dag_id}.{task_id} listed",
                                  lambda: task_id in self.tasks(dag_id), timeout)

    def gone(self, dag_id, timeout) -> float:
        """Seconds until `dag_id` is stale (its file is gone: never scheduled again) or unknown."""
        def stale():
            dag = self.dag(dag_id)
            return dag is None or dag["is_stale"]

        return self.seconds_until(f"DAG {dag_id} stale", stale, timeout)


class GitServer:
    """A bare repository on lab host `name`, served over SSH by its sshd to the user `git`
    (git-shell only), which the cluster's deploy key may read and, here, push to."""

    def __init__(self, lab, name, repository="/srv/git/dags.git"):
        self.lab, self.name, self.repository = lab, name, repository
        secrets_dir = project_path(lab.cluster.settings["secrets_file"], PROJECT).parent
        # The key the deploy generates and gives the hosts (made here first, if need be).
        self.key = ensure_deploy_key(generated_key_path(secrets_dir), generate=True)
        self.address = lab.cluster.node(name).address
        self.url = f"ssh://git@{self.address}{repository}"
        self.scratch = Path(tempfile.mkdtemp(prefix="lab-git-"))
        self.work = self.scratch / "repo"

    def install(self):
        """git and the `git` account on the host, the deploy key authorized, an empty repo."""
        script = f"""set -e
command -v git >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q git >/dev/null
id git >/dev/null 2>&1 || useradd --system --create-home --home-dir /srv/git \
    --shell /usr/bin/git-shell git
usermod -p '*' git  # no password, but not locked: sshd admits its key
install -d -o git -g git -m 0700 /srv/git/.ssh
echo '{public_key_line(self.key)}' > /srv/git/.ssh/authorized_keys
chown git:git /srv/git/.ssh/authorized_keys && chmod 0600 /srv/git/.ssh/authorized_keys
[ -d {self.repository} ] || runuser -u git -- git init -q --bare -b main {self.repository}
# sshd turns unprivileged users away while /run/nologin exists (pam_nologin): from boot until
# systemd-user-sessions.service removes it. Wait for that; if it stays, say what the host says.
for _ in $(seq 300); do [ -e /run/nologin ] || break; sleep 1; done
if [ -e /run/nologin ]; then
    echo "/run/nologin still there (since $(stat -c %y /run/nologin)), system" \
        "$(systemctl is-system-running), up $(cut -d' ' -f1 /proc/uptime) s" >&2
    journalctl -b --no-pager -u systemd-tmpfiles-setup -u systemd-user-sessions >&2
    exit 1
fi
"""
        done = self.lab.run(self.name, script, timeout=600)
        assert done.returncode == 0, done.stderr
        # A clone: pushes go on top of what an earlier run left in the repository.
        self._git("clone", "-q", self.url, str(self.work), cwd=self.scratch)

    def known_hosts(self) -> Path:
        """The host's key as a known_hosts file (the lab's own record of it)."""
        lab_file = self.lab.data(self.name).get("ssh_known_hosts_file")
        lines = [line for line in Path(lab_file).read_text().splitlines()
                 if line.split(" ", 1)[0] == self.address]
        path = self.scratch / "known_hosts"
        path.write_text("\n".join(lines) + "\n")
        return path

    def push(self, files: dict[str, str], message):
        """Commit `files` (name -> text) on top of what was pushed before, and push."""
        for name, text in files.items():
            (self.work / name).write_text(text)
        self._git("add", "--all")
        self._git("-c", "user.name=lab", "-c", "user.email=lab@airflow-cluster.invalid",
                  "commit", "-q", "-m", message)
        self._git("push", "-q", "origin", "HEAD:main")

    def data(self, **more) -> list[str]:
        """pyinfra --data arguments that make this repository the Git DAG bundle."""
        settings = {"dags_git_url": self.url, "dags_git_known_hosts": str(self.known_hosts()),
                    **more}
        return [arg for key, value in settings.items() for arg in ("--data", f"{key}={value}")]

    def _git(self, *args, cwd=None):
        ssh = (f"ssh -i {self.key} -o IdentitiesOnly=yes -o BatchMode=yes "
               f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={self.known_hosts()}")
        env = {**os.environ, "GIT_SSH_COMMAND": ssh}
        done = subprocess.run(["git", *args], cwd=cwd or self.work, env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"

    def cleanup(self):
        shutil.rmtree(self.scratch, ignore_errors=True)

