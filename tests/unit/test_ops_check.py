"""`python -m ops check`: every invalid inventory/group_data is rejected with one clear line.

Each test writes a project (inventory.py + copies of the shipped group_data) into tmp_path
and runs the real command in a subprocess, as a user would.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# The shipped lab layout, on another subnet so nothing here depends on inventory.py.
GROUPS = {
    "lb": ["lb1", "lb2"],
    "redis": ["redis1", "redis2", "redis3"],
    "postgres": ["db1"],
    "web": ["web1", "web2"],
    "scheduler": ["web1", "web2"],
    "worker": ["worker1", "worker2"],
}
ADDRESSES = {
    "lb1": "10.9.0.11", "lb2": "10.9.0.12",
    "redis1": "10.9.0.21", "redis2": "10.9.0.22", "redis3": "10.9.0.23",
    "redis4": "10.9.0.24", "redis5": "10.9.0.25",
    "db1": "10.9.0.31", "db2": "10.9.0.32",
    "web1": "10.9.0.41", "web2": "10.9.0.42",
    "worker1": "10.9.0.51", "worker2": "10.9.0.52",
    "lb3": "10.9.0.13",
}
VIP = "10.9.0.10"


def write_project(root: Path, groups=None, common=None, host_data=None, addresses=None):
    """An inventory.py for `groups` (None: the lab layout) plus the shipped group_data."""
    groups = GROUPS if groups is None else groups
    addresses = ADDRESSES if addresses is None else addresses
    common = {"lb_vip": VIP} if common is None else common
    host_data = host_data or {}
    lines = []
    for group, names in groups.items():
        hosts = []
        for name in names:
            data = {**common, **host_data.get(name, {})}
            if name in addresses:
                data = {"ssh_hostname": addresses[name], **data}
            hosts.append((name, data))
        lines.append(f"{group} = {hosts!r}")
    root.mkdir(parents=True, exist_ok=True)
    (root / "inventory.py").write_text("\n".join(lines) + "\n")
    copy_project_folders(root)
    return root


def copy_project_folders(root: Path) -> None:
    """The shipped group_data, dags and plugins folders (a deploy uploads the last two)."""
    for folder in ("group_data", "dags", "plugins"):
        shutil.copytree(REPO / folder, root / folder, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))


def append_group_data(root: Path, group: str, text: str) -> None:
    with open(root / "group_data" / f"{group}.py", "a") as f:
        f.write("\n" + text + "\n")


def ops_check(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "ops", "--project-dir", str(root), "check", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )


def assert_rejected(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def without(group: str, **groups):
    return {**{g: h for g, h in GROUPS.items() if g != group}, **groups}


# --- valid ----------------------------------------------------------------------------------


def test_shipped_inventory_passes_and_summary_names_vip_and_hosts(tmp_path):
    shutil.copy(REPO / "inventory.py", tmp_path / "inventory.py")
    copy_project_folders(tmp_path)
    result = ops_check(tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "VIP            172.29.213.10" in out
    for host, address in (("lb1", "172.29.213.11"), ("redis3", "172.29.213.23"),
                          ("db1", "172.29.213.31"), ("worker2", "172.29.213.52")):
        assert f"{host} {address}" in out
    assert "2 of 3 sentinels" in out
    assert "https://172.29.213.10/execution/" in out
    assert "web1 172.29.213.41:8080, web2 172.29.213.42:8080" in out
    # Each host's ports, for a firewall of one's own (firewall = False).
    assert re.search(r"\n  db1 +22 SSH server \(anyone\), 5432 PostgreSQL\n", out)
    assert "8404 HAProxy stats page, VRRP from 172.29.213.12" in " ".join(out.split())
    # Offline and read-only: no secrets file appears.
    assert not (tmp_path / ".secrets").exists()


def test_explicit_inventory_path_relative_to_cwd(tmp_path):
    write_project(tmp_path / "p")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "ops", "--project-dir", "p", "check", "p/inventory.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"VIP            {VIP}" in result.stdout


def test_external_database_passes(tmp_path):
    write_project(tmp_path, groups=without("postgres"))
    url = "postgresql://af@db.example:6432/meta?sslmode=require"
    append_group_data(tmp_path, "all", f"external_database_url = {url!r}")
    result = ops_check(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "af@db.example:6432/meta (external)" in result.stdout


def test_single_lb_needs_no_vip(tmp_path):
    write_project(tmp_path, groups=without("lb", lb=["lb1"]), common={})
    result = ops_check(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "https://10.9.0.11/execution/" in result.stdout
    assert "none (one lb host)" in result.stdout


# --- invalid topology -----------------------------------------------------------------------


@pytest.mark.parametrize("redis, count", [
    (["redis1"], "1 host (redis1)"),
    (["redis1", "redis2"], "2 hosts"),
    (["redis1", "redis2", "redis3", "redis4"], "4 hosts"),
])
def test_redis_group_must_be_odd_and_at_least_3(tmp_path, redis, count):
    write_project(tmp_path, groups=without("redis", redis=redis))
    assert_rejected(ops_check(tmp_path), "group 'redis'", count, "odd")


@pytest.mark.parametrize("group", ["redis", "web", "scheduler", "worker", "lb"])
def test_required_group_empty(tmp_path, group):
    write_project(tmp_path, groups=without(group, **{group: []}))
    assert_rejected(ops_check(tmp_path), f"group {group!r} has no hosts")


def test_required_group_missing_entirely(tmp_path):
    write_project(tmp_path, groups=without("worker"))
    assert_rejected(ops_check(tmp_path), "group 'worker' has no hosts")


def test_same_address_twice(tmp_path):
    write_project(tmp_path, addresses={**ADDRESSES, "web2": ADDRESSES["web1"]})
    assert_rejected(ops_check(tmp_path), "'web1'", "'web2'", "same address 10.9.0.41")


def test_address_must_be_an_ip(tmp_path):
    write_project(tmp_path, addresses={**ADDRESSES, "worker1": "worker1.example.com"})
    assert_rejected(ops_check(tmp_path), "host 'worker1'", "'worker1.example.com'",
                    "not an IP address")


def test_address_missing(tmp_path):
    addresses = {k: v for k, v in ADDRESSES.items() if k != "db1"}
    write_project(tmp_path, addresses=addresses)
    assert_rejected(ops_check(tmp_path), "host 'db1' has no ssh_hostname")


def test_lb_group_of_three(tmp_path):
    write_project(tmp_path, groups=without("lb", lb=["lb1", "lb2", "lb3"]))
    assert_rejected(ops_check(tmp_path), "group 'lb' has 3 hosts", "1 or 2")


def test_two_lb_hosts_need_a_vip(tmp_path):
    write_project(tmp_path, common={})
    assert_rejected(ops_check(tmp_path), "lb_vip is not set", "lb1, lb2")


def test_vip_must_not_be_a_host_address(tmp_path):
    write_project(tmp_path, common={"lb_vip": ADDRESSES["web2"]})
    assert_rejected(ops_check(tmp_path), "lb_vip 10.9.0.42", "host 'web2'")


def test_vip_must_be_an_ip(tmp_path):
    write_project(tmp_path, common={"lb_vip": "10.9.0.300"})
    assert_rejected(ops_check(tmp_path), "setting 'lb_vip'", "IP address", "10.9.0.300")


# --- database -------------------------------------------------------------------------------


def test_no_database_at_all(tmp_path):
    write_project(tmp_path, groups=without("postgres"))
    assert_rejected(ops_check(tmp_path), "no database", "postgres", "external_database_url")


@pytest.mark.parametrize("url, reason", [
    ("mysql://af@db.example/airflow", "must start with postgresql://"),
    ("postgresql://af:hunter2@db.example/airflow", "must not contain a password"),
    ("postgresql://af@db.example", "has no database name"),
    ("postgresql://af@db.example/", "has no database name"),
    ("postgresql:///airflow", "has no host"),
    ("postgresql://db.example/airflow", "has no user"),
    ("postgresql://af@db.example:99999/airflow", "invalid port"),
])
def test_malformed_external_database_url(tmp_path, url, reason):
    write_project(tmp_path, groups=without("postgres"))
    append_group_data(tmp_path, "all", f"external_database_url = {url!r}")
    result = ops_check(tmp_path)
    assert_rejected(result, "external_database_url", reason)
    assert "hunter2" not in result.stdout + result.stderr


def test_postgres_group_of_two(tmp_path):
    write_project(tmp_path, groups=without("postgres", postgres=["db1", "db2"]))
    assert_rejected(ops_check(tmp_path), "group 'postgres' has 2 hosts", "only one")


def test_postgres_group_and_external_url(tmp_path):
    write_project(tmp_path)
    append_group_data(tmp_path, "all",
                      'external_database_url = "postgresql://af@db.example/airflow"')
    assert_rejected(ops_check(tmp_path), "both a 'postgres' group (db1)", "external_database_url")


# --- settings -------------------------------------------------------------------------------


def test_unknown_setting_in_group_data_all(tmp_path):
    write_project(tmp_path)
    append_group_data(tmp_path, "all", "redis_prot = 6379")
    assert_rejected(ops_check(tmp_path), "unknown setting 'redis_prot'",
                    "did you mean 'redis_port'?", "group_data/all.py")


def test_unknown_setting_in_group_file(tmp_path):
    write_project(tmp_path)
    append_group_data(tmp_path, "worker", "airflow_hmoe = '/srv/airflow'")
    assert_rejected(ops_check(tmp_path), "unknown setting 'airflow_hmoe'",
                    "'airflow_home'", "group 'worker'")


def test_unknown_setting_in_group_data_of_a_group_without_hosts(tmp_path):
    # External database: the postgres group has no hosts, its group_data is still checked.
    write_project(tmp_path, groups=without("postgres"))
    append_group_data(tmp_path, "all",
                      'external_database_url = "postgresql://af@db.example/airflow"')
    append_group_data(tmp_path, "postgres", "postgres_prot = 5433")
    assert_rejected(ops_check(tmp_path), "unknown setting 'postgres_prot'", "group 'postgres'")


def test_unknown_setting_in_host_data(tmp_path):
    write_project(tmp_path, host_data={"web2": {"ssh_usr": "admin"}})
    assert_rejected(ops_check(tmp_path), "unknown setting 'ssh_usr'", "'ssh_user'",
                    "host data of 'web2'")


def test_unknown_underscore_argument(tmp_path):
    write_project(tmp_path, host_data={"lb1": {"_sduo": True}})
    assert_rejected(ops_check(tmp_path), "unknown setting '_sduo'", "'_sudo'")


def test_pyinfra_global_arguments_and_ssh_settings_are_known(tmp_path):
    write_project(tmp_path, host_data={"lb1": {"_sudo": True, "ssh_port": 2222,
                                               "ssh_connect_retries": 3}})
    result = ops_check(tmp_path)
    assert result.returncode == 0, result.stderr


def test_unknown_group_in_group_data(tmp_path):
    write_project(tmp_path)
    (tmp_path / "group_data" / "workers.py").write_text("http_proxy = None\n")
    assert_rejected(ops_check(tmp_path), "group_data/workers.py", "'workers'",
                    "known groups:", "worker")


@pytest.mark.parametrize("assignment, fragments", [
    ("redis_port = '6379x'", ("setting 'redis_port'", "port number", "'6379x'")),
    ("api_port = 70000", ("setting 'api_port'", "port number", "70000")),
    ("lb_https_port = 0", ("setting 'lb_https_port'", "port number")),
    ("sentinel_port = True", ("setting 'sentinel_port'", "port number")),
    ("no_proxy = 'localhost'", ("setting 'no_proxy'", "a list")),
    ("airflow_home = 'opt/airflow'", ("setting 'airflow_home'", "absolute path")),
    ("http_proxy = 'proxy:3128'", ("setting 'http_proxy'", "http/https URL")),
    ("sysctl = ['vm.swappiness=1']", ("setting 'sysctl'", "a dict")),
])
def test_setting_of_the_wrong_type(tmp_path, assignment, fragments):
    write_project(tmp_path)
    append_group_data(tmp_path, "all", assignment)
    assert_rejected(ops_check(tmp_path), *fragments, "group_data/all.py")


def test_cluster_wide_setting_must_agree(tmp_path):
    # Web hosts would build the broker URL with another port than the redis hosts use.
    write_project(tmp_path)
    append_group_data(tmp_path, "redis", "redis_port = 6380")
    assert_rejected(ops_check(tmp_path), "setting 'redis_port' must be the same on every host",
                    "6380")


# --- files ----------------------------------------------------------------------------------


def test_missing_inventory_file(tmp_path):
    write_project(tmp_path)
    assert_rejected(ops_check(tmp_path, str(tmp_path / "prod.py")), "inventory file not found")


def test_inventory_with_a_python_error(tmp_path):
    write_project(tmp_path)
    (tmp_path / "inventory.py").write_text("web = [('web1', {'ssh_hostname': ADDR})]\n")
    assert_rejected(ops_check(tmp_path), "inventory.py", "NameError")


def test_unsafe_secrets_file_is_reported(tmp_path):
    write_project(tmp_path)
    secrets = tmp_path / ".secrets"
    secrets.mkdir(mode=0o700)
    (secrets / "cluster.json").write_text("{}")
    (secrets / "cluster.json").chmod(0o644)
    assert_rejected(ops_check(tmp_path), "cluster.json", "accessible by group or others")


@pytest.mark.parametrize("assignment, fragments", [
    ("autoscale_min_instances = 4", ("worker1: autoscale_min_instances (4)",
                                     "above autoscale_max_instances (3)")),
    ("worker_stop_timeout = 86400", ("worker_stop_timeout (86400) must be below "
                                     "celery_visibility_timeout (86400)",)),
])
def test_worker_autoscaling_relations_are_checked(tmp_path, assignment, fragments):
    write_project(tmp_path)
    append_group_data(tmp_path, "worker", assignment)
    assert_rejected(ops_check(tmp_path), *fragments)


# --- names, addresses, ports, text (one rule each) ----------------------------------------------


def test_host_name_must_be_a_dns_name(tmp_path):
    groups = {g: [("web_1" if h == "web1" else h) for h in hosts] for g, hosts in GROUPS.items()}
    write_project(tmp_path, groups=groups, addresses={**ADDRESSES, "web_1": "10.9.0.41"})
    assert_rejected(ops_check(tmp_path), "host name 'web_1' is not a DNS name")


def test_hosts_in_a_group_that_is_not_a_role(tmp_path):
    write_project(tmp_path, groups={**GROUPS, "workers": ["worker1"]})
    assert_rejected(ops_check(tmp_path), "group 'workers' (worker1) is not a role", "roles:")


def test_ipv6_hosts_are_refused(tmp_path):
    addresses = {name: f"fd00::{i + 1}" for i, name in enumerate(ADDRESSES)}
    write_project(tmp_path, addresses=addresses, common={"lb_vip": "fd00::100"})
    assert_rejected(ops_check(tmp_path), "is IPv6", "IPv4")


@pytest.mark.parametrize("vip, fragment", [
    ("fd00::10", "lb_vip fd00::10 is IPv6"),
    ("127.0.0.10", "lb_vip 127.0.0.10 is not a unicast address"),
    ("224.0.0.18", "lb_vip 224.0.0.18 is not a unicast address"),
    ("169.254.0.10", "lb_vip 169.254.0.10 is not a unicast address"),
    ("0.0.0.0", "lb_vip 0.0.0.0 is not a unicast address"),
])
def test_vip_must_be_a_reachable_ipv4_address(tmp_path, vip, fragment):
    write_project(tmp_path, common={"lb_vip": vip})
    assert_rejected(ops_check(tmp_path), fragment)


@pytest.mark.parametrize("group, assignment, fragments", [
    # web1 is a web and a scheduler host.
    ("scheduler", "scheduler_health_port = 8080",
     ("host 'web1'", "port 8080 is both the API server's and the scheduler health server's")),
    ("all", "worker_log_server_port = 22", ("host 'worker1'", "port 22 is both the SSH server's and the worker log server's")),
    ("lb", "lb_stats_port = 443", ("host 'lb1'", "HTTPS front's and the HAProxy stats page's")),
])
def test_two_services_of_a_host_on_one_port(tmp_path, group, assignment, fragments):
    write_project(tmp_path)
    append_group_data(tmp_path, group, assignment)
    assert_rejected(ops_check(tmp_path), *fragments)


@pytest.mark.parametrize("assignment, name", [
    ("airflow_admin_email = 'admin@example.com\\nx = 1'", "airflow_admin_email"),
    ("base_packages = ['curl', 'less\\rrm']", "base_packages"),
    ("sysctl = {'vm.swappiness': '1\\tx'}", "sysctl"),
])
def test_control_characters_in_any_text_setting(tmp_path, assignment, name):
    write_project(tmp_path)
    append_group_data(tmp_path, "all", assignment)
    assert_rejected(ops_check(tmp_path), f"setting {name!r}", "control character")


@pytest.mark.parametrize("supplied, fragment", [
    ({"jwt_secret": "a"}, "'jwt_secret' has 1 characters: at least 32"),
    ({"redis_password": "it's-a-long-password"}, "'redis_password' holds a quote"),
])
def test_weak_or_unusable_supplied_secret(tmp_path, supplied, fragment):
    write_project(tmp_path)
    secrets = tmp_path / ".secrets"
    secrets.mkdir(mode=0o700)
    (secrets / "cluster.json").write_text(json.dumps(supplied))
    (secrets / "cluster.json").chmod(0o600)
    assert_rejected(ops_check(tmp_path), "cluster.json", fragment)


# --- least privilege: what worker hosts may hold --------------------------------------------------


@pytest.mark.parametrize("role", ["web", "scheduler"])
def test_a_worker_host_may_not_run_an_api_server_or_scheduler(tmp_path, role):
    write_project(tmp_path, groups={**GROUPS, role: [*GROUPS[role], "worker1"]})
    assert_rejected(ops_check(tmp_path), f"host 'worker1' is in group 'worker' and in {role}",
                    "give the workers hosts of their own")


@pytest.mark.parametrize("group, assignment, fragments", [
    ("all", 'celery_database_user = "airflow"',
     ("celery_database_user is 'airflow', the metadata database's role too",)),
    ("worker", 'log_server_user = "airflow"',
     ("worker1: log_server_user is 'airflow'", "a user of its own")),
    ("worker", 'log_server_user = "root"', ("worker1: log_server_user is 'root'",)),
])
def test_the_workers_own_accounts_differ_from_the_privileged_ones(tmp_path, group, assignment,
                                                                   fragments):
    write_project(tmp_path)
    append_group_data(tmp_path, group, assignment)
    assert_rejected(ops_check(tmp_path), *fragments)


def test_an_external_database_whose_role_is_the_workers_role(tmp_path):
    write_project(tmp_path, groups=without("postgres"))
    append_group_data(tmp_path, "all",
                      'external_database_url = "postgresql://airflow_celery@db.example/airflow"')
    assert_rejected(ops_check(tmp_path), "celery_database_user is 'airflow_celery'")
