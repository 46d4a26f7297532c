"""Where the cluster's DAGs and plugins come from, decided once from the settings.

- Always: Airflow's `dags-folder` bundle, the folder `dags_dir` of the control machine that
  every deploy syncs to the scheduler and worker hosts, and `plugins_dir`, synced to every
  Airflow host.
- With `dags_git_url`: a second bundle, `dags-git` (the git provider's GitDagBundle), which
  the DAG processors fetch every `dag_bundle_refresh_interval` and the workers check out at
  the version a run was parsed from: DAG authors publish by pushing, without a deploy. Hosts
  read the repository over SSH with a key and known_hosts the deploy puts in HOST_GIT_DIR,
  through the Airflow connection GIT_CONN_ID (an environment variable of every Airflow
  process: it names files, it holds no secret).
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from .errors import ClusterConfigError
from .paths import project_path

LOCAL_BUNDLE = "dags-folder"
GIT_BUNDLE = "dags-git"
GIT_CONN_ID = "dags_git"
# On the hosts: the deploy key (0640 root:airflow) and the Git server's host keys.
HOST_GIT_DIR = "/etc/airflow-cluster/dags-git"
HOST_GIT_KEY = f"{HOST_GIT_DIR}/id"
HOST_GIT_KNOWN_HOSTS = f"{HOST_GIT_DIR}/known_hosts"


@dataclass(frozen=True)
class GitSource:
    url: str
    ref: str
    # Folder of the repository with the DAG files (None: the top).
    subdir: str | None
    # Control-machine files: the private key (the user's, or the generated deploy key's path)
    # and the Git server's host keys (None: trust on first use). No key over https/file.
    key: Path | None
    key_generated: bool
    known_hosts: Path | None


@dataclass(frozen=True)
class DagSources:
    # Control-machine folders synced to the hosts.
    dags_dir: Path
    plugins_dir: Path
    git: GitSource | None
    # [dag_processor] dag_bundle_config_list, as Airflow reads it (JSON).
    bundle_config: str
    # Environment of every Airflow process: the Airflow connection of the Git bundle (JSON,
    # no secret), or nothing.
    environment: Mapping[str, str]


def build_dag_sources(settings, secrets_dir: Path, project_dir: Path) -> DagSources:
    git = _git_source(settings, secrets_dir, project_dir)
    bundles: list[dict[str, Any]] = [
        {
            "name": LOCAL_BUNDLE,
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {},  # the dags_folder of airflow.cfg
        }
    ]
    environment = {}
    if git:
        kwargs = {"git_conn_id": GIT_CONN_ID, "repo_url": git.url, "tracking_ref": git.ref}
        if git.subdir:
            kwargs["subdir"] = git.subdir
        bundles.append({
            "name": GIT_BUNDLE,
            "classpath": "airflow.providers.git.bundles.git.GitDagBundle",
            "kwargs": kwargs,
        })
        environment[f"AIRFLOW_CONN_{GIT_CONN_ID.upper()}"] = json.dumps(_connection(git))
    return DagSources(
        dags_dir=project_path(settings["dags_dir"], project_dir),
        plugins_dir=project_path(settings["plugins_dir"], project_dir),
        git=git,
        bundle_config=json.dumps(bundles),
        environment=MappingProxyType(environment),
    )


def generated_key_path(secrets_dir: Path) -> Path:
    """Where the generated deploy key lives on the control machine (its .pub beside it)."""
    return secrets_dir / "git" / "id_ed25519"


def uses_ssh(url: str) -> bool:
    """Whether git reaches `url` over SSH (ssh:// or the scp-like user@host:path)."""
    if "://" in url:
        return urlsplit(url).scheme in ("ssh", "git+ssh")
    return ":" in url  # git's scp-like [user@]host:path


def _git_source(settings, secrets_dir: Path, project_dir: Path) -> GitSource | None:
    url = settings["dags_git_url"]
    if not url:
        return None
    key, generated = None, False
    if uses_ssh(url):
        if settings["dags_git_key"]:
            key = project_path(settings["dags_git_key"], project_dir)
        else:
            key, generated = generated_key_path(secrets_dir), True
    else:
        for name in ("dags_git_key", "dags_git_known_hosts"):
            if settings[name]:
                raise ClusterConfigError(
                    f"{name} is set but dags_git_url {url!r} is not reached over SSH"
                )
    known = settings["dags_git_known_hosts"]
    return GitSource(
        url=url,
        ref=settings["dags_git_ref"],
        subdir=settings["dags_git_subdir"],
        key=key,
        key_generated=generated,
        known_hosts=project_path(known, project_dir) if known else None,
    )


def _connection(git: GitSource) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if git.key:
        extra["key_file"] = HOST_GIT_KEY
        if git.known_hosts:
            extra |= {"known_hosts_file": HOST_GIT_KNOWN_HOSTS, "strict_host_key_checking": "yes"}
        else:
            # Trust on first use; the airflow user's ~/.ssh/known_hosts keeps what was seen.
            extra["strict_host_key_checking"] = "accept-new"
    return {"conn_type": "git", "host": git.url, "extra": extra}


def check_local_files(sources: DagSources) -> None:
    """The control machine's folders and files the deploy uploads exist (checked before any
    host is touched; the deploy key is checked where it is made, cluster/deploy_key.py)."""
    for setting, folder in (("dags_dir", sources.dags_dir), ("plugins_dir", sources.plugins_dir)):
        if not folder.is_dir():
            raise ClusterConfigError(f"{setting}: no such folder on the control machine: {folder}")
    known = sources.git.known_hosts if sources.git else None
    if known is not None and not known.is_file():
        raise ClusterConfigError(
            f"dags_git_known_hosts: no such file on the control machine: {known}"
        )
