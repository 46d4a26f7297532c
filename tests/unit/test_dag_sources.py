"""Where DAGs and plugins come from: the synced folders, the optional Git bundle, its
connection and deploy key, checked offline."""

import json
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization

from cluster.dag_sources import GIT_BUNDLE, HOST_GIT_KEY, HOST_GIT_KNOWN_HOSTS, LOCAL_BUNDLE
from cluster.dag_sources import build_dag_sources, check_local_files, uses_ssh
from cluster.deploy_key import ensure_deploy_key, public_key_line
from cluster.errors import ClusterConfigError
from cluster.model import build_cluster
from tests.unit.support import ALL_DATA, PROJECT, api_inventory

GIT = {"dags_git_url": "ssh://git@git.example/data/dags.git", "dags_git_subdir": "dags"}


def sources(tmp_path, **settings):
    return build_dag_sources({**ALL_DATA, **settings}, tmp_path / "secrets", PROJECT)


def test_default_is_the_synced_folders_only(cluster):
    dags = cluster.dags
    assert (dags.dags_dir, dags.plugins_dir) == (PROJECT / "dags", PROJECT / "plugins")
    assert dags.git is None and dict(dags.environment) == {}
    assert [b["name"] for b in json.loads(dags.bundle_config)] == [LOCAL_BUNDLE]
    check_local_files(dags)  # the repository ships both folders


def test_git_bundle_next_to_the_folder(tmp_path):
    dags = sources(tmp_path, **GIT)
    bundles = json.loads(dags.bundle_config)
    assert [b["name"] for b in bundles] == [LOCAL_BUNDLE, GIT_BUNDLE]
    assert bundles[1]["classpath"] == "airflow.providers.git.bundles.git.GitDagBundle"
    assert bundles[1]["kwargs"] == {"git_conn_id": "dags_git", "repo_url": GIT["dags_git_url"],
                                    "tracking_ref": "main", "subdir": "dags"}
    assert dags.git.key == tmp_path / "secrets" / "git" / "id_ed25519"
    assert dags.git.key_generated


def test_git_connection_names_files_and_holds_no_secret(tmp_path):
    trusting = sources(tmp_path, **GIT)
    connection = json.loads(trusting.environment["AIRFLOW_CONN_DAGS_GIT"])
    assert connection == {
        "conn_type": "git", "host": GIT["dags_git_url"],
        "extra": {"key_file": HOST_GIT_KEY, "strict_host_key_checking": "accept-new"},
    }
    pinned = sources(tmp_path, **GIT, dags_git_known_hosts="/etc/ssh/git_known_hosts")
    extra = json.loads(pinned.environment["AIRFLOW_CONN_DAGS_GIT"])["extra"]
    assert extra["strict_host_key_checking"] == "yes"
    assert extra["known_hosts_file"] == HOST_GIT_KNOWN_HOSTS
    assert "'" not in pinned.environment["AIRFLOW_CONN_DAGS_GIT"]  # single-quoted in a file


def test_https_repository_needs_no_key(tmp_path):
    dags = sources(tmp_path, dags_git_url="https://git.example/dags.git")
    assert dags.git.key is None
    assert json.loads(dags.environment["AIRFLOW_CONN_DAGS_GIT"])["extra"] == {}


@pytest.mark.parametrize("url, ssh", [
    ("ssh://git@h/x.git", True), ("git@h:x.git", True), ("h:/srv/x.git", True),
    ("https://h/x.git", False), ("file:///srv/x.git", False),
])
def test_uses_ssh(url, ssh):
    assert uses_ssh(url) is ssh


@pytest.mark.parametrize("url", ["/srv/dags.git", "ssh://h/a b", "git@h:x'y", ""])
def test_bad_git_url_is_refused_by_the_model(url):
    with pytest.raises(ClusterConfigError, match="dags_git_url"):
        build_cluster(api_inventory(all_data={"dags_git_url": url}))


def test_missing_folder_is_refused(tmp_path):
    with pytest.raises(ClusterConfigError, match="plugins_dir: no such folder"):
        check_local_files(sources(tmp_path, plugins_dir=str(tmp_path / "nope")))


def test_generated_deploy_key_is_made_once_and_private(tmp_path):
    key = tmp_path / "git" / "id_ed25519"
    assert ensure_deploy_key(key, generate=True) == key
    first = key.read_bytes()
    assert ensure_deploy_key(key, generate=True) == key and key.read_bytes() == first
    assert key.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "git").stat().st_mode & 0o777 == 0o700
    assert public_key_line(key).startswith("ssh-ed25519 AAAA")
    # ssh itself derives the same public key from the private one.
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], capture_output=True,
                             text=True, check=True).stdout.split()[:2]
    assert derived == public_key_line(key).split()[:2]


def test_user_key_must_be_an_unencrypted_private_key(tmp_path):
    key = tmp_path / "mine"
    with pytest.raises(ClusterConfigError, match="dags_git_key"):
        ensure_deploy_key(key, generate=False)
    key.write_text("not a key\n")
    with pytest.raises(ClusterConfigError, match="not an unencrypted private key"):
        ensure_deploy_key(key, generate=False)
    ensure_deploy_key(tmp_path / "gen", generate=True)
    encrypted = serialization.load_ssh_private_key((tmp_path / "gen").read_bytes(), None)
    key.write_bytes(encrypted.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.BestAvailableEncryption(b"pass")))
    with pytest.raises(ClusterConfigError, match="not an unencrypted private key"):
        ensure_deploy_key(key, generate=False)
    key.write_bytes((tmp_path / "gen").read_bytes())
    assert ensure_deploy_key(key, generate=False) == key


def test_key_settings_need_an_ssh_url(tmp_path):
    with pytest.raises(ClusterConfigError, match="dags_git_key is set but"):
        sources(tmp_path, dags_git_url="https://git.example/d.git", dags_git_key="k")
    with pytest.raises(ClusterConfigError, match="dags_git_known_hosts is set but"):
        sources(tmp_path, dags_git_url="file:///srv/d.git", dags_git_known_hosts="k")


@pytest.mark.parametrize("url", ["http://git.example/d.git", "https://u:token@git.example/d.git"])
def test_clear_text_or_password_urls_are_refused(url):
    with pytest.raises(ClusterConfigError, match="dags_git_url") as refused:
        build_cluster(api_inventory(all_data={"dags_git_url": url}))
    assert "token" not in str(refused.value)


def test_missing_known_hosts_file_is_refused(tmp_path):
    with pytest.raises(ClusterConfigError, match="dags_git_known_hosts: no such file"):
        check_local_files(sources(tmp_path, **GIT, dags_git_known_hosts=str(tmp_path / "nope")))
