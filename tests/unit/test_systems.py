"""The supported systems (cluster/systems.py), with no host: which os-release is which release
and which is refused, and the whole deploy prepared on fresh hosts of each recorded system
(tests/unit/deploy_run.py): facts in, commands out.

tests/unit/fixtures/systems/<system>.json:
    {"os_release": "/etc/os-release as the system ships it",
     "facts": {"<module>.<Fact>": answer | {"kwargs": {"<kwargs string>": answer}}},
     "expect": {"<host>": [commands, in the order the host runs them]},
     "absent": [text no command of any host contains]}
Ubuntu and the RHEL family cannot be booted in the lab (their archives are out of its reach):
these are their tests. Debian 12 and 13 are also deployed for real (tests/lab, LAB_DISTRO).
"""

import pytest
from pyinfra.facts.server import LinuxDistribution

from cluster.errors import ClusterConfigError
from cluster.services import host_units
from cluster.systems import RELEASES, system_of
from tests.unit import deploy_run
from tests.unit.deploy_run import deploy_steps, load_system, system_names

RECORDED = {
    "debian12": "Debian 12",
    "debian13": "Debian 13",
    "ubuntu2404": "Ubuntu 24.04",
    "almalinux9": "AlmaLinux 9",
    "rocky9": "Rocky Linux 9",
}


def distribution(os_release: str) -> dict:
    """pyinfra's LinuxDistribution fact of a host with this /etc/os-release."""
    return LinuxDistribution().process(["/etc/os-release", *os_release.splitlines(), "---"])


def test_every_supported_release_has_a_recorded_system():
    assert sorted(system_names()) == sorted(RECORDED)
    assert sorted(RECORDED.values()) == sorted(r.name for r in RELEASES.values())


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_each_recorded_os_release_is_its_release(name):
    release = system_of("h1", distribution(load_system(name)["os_release"]))
    assert release.name == RECORDED[name]


@pytest.mark.parametrize("os_release, shown", [
    ('PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\nVERSION_ID="11"\nID=debian\n',
     "Debian GNU/Linux 11 (bullseye)"),
    ('PRETTY_NAME="Ubuntu 22.04.5 LTS"\nVERSION_ID="22.04"\nID=ubuntu\nID_LIKE=debian\n',
     "Ubuntu 22.04.5 LTS"),
    ('NAME="AlmaLinux"\nID="almalinux"\nVERSION_ID="8.10"\nPRETTY_NAME="AlmaLinux 8.10"\n',
     "AlmaLinux 8.10"),
    ('NAME="Fedora Linux"\nID=fedora\nVERSION_ID=41\n', "fedora 41"),
    ("", "unknown"),
])
def test_an_unsupported_system_is_refused_with_its_name(os_release, shown):
    with pytest.raises(ClusterConfigError) as refused:
        system_of("web1", distribution(os_release))
    message = str(refused.value)
    assert message.startswith(f"web1 runs {shown}, which the deploy does not support")
    assert "Debian 12" in message and "Rocky Linux 9" in message


def test_the_deploy_stops_while_preparing_on_an_unsupported_host(tmp_path, monkeypatch):
    """The refusal comes while pyinfra prepares the run (facts only), so no operation of any
    host has run: pyinfra executes nothing after an error there."""
    recorded = load_system("debian12")
    recorded["os_release"] = ('PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\n'
                              'VERSION_ID="11"\nID=debian\n')
    monkeypatch.setattr(deploy_run, "load_system", lambda name: recorded)
    with pytest.raises(ClusterConfigError) as stopped:
        deploy_steps("debian12", tmp_path)
    # The first host, before any operation of the run was added for it.
    assert str(stopped.value).startswith(
        "lb1 runs Debian GNU/Linux 11 (bullseye), which the deploy does not support")


@pytest.fixture(scope="module", params=sorted(RECORDED))
def deployed(request, tmp_path_factory):
    name = request.param
    return load_system(name), deploy_steps(name, tmp_path_factory.mktemp(name))


def _commands(steps) -> list[str]:
    return [command for step in steps for command in step.commands]


def test_each_role_runs_its_systems_packages_paths_and_units_in_order(deployed):
    system, steps = deployed
    for host, expected in system["expect"].items():
        commands = iter(_commands(steps[host]))
        for command in expected:
            # A subsequence: each expected command after the one before it.
            assert any(command == seen for seen in commands), f"{host}: no {command!r} (in order)"


def test_no_command_of_another_system_runs(deployed):
    system, steps = deployed
    for host, host_steps in steps.items():
        for command in _commands(host_steps):
            for text in system["absent"]:
                assert text not in command, f"{host}: {command!r}"


def test_every_host_of_every_system_gets_the_whole_deploy(deployed):
    """The same roles on each system: the operations differ in their commands, not in what
    they are for (the step names match those of Debian 12, the lab's system, but for the
    ones a system adds or leaves out)."""
    system, steps = deployed
    names = {host: {step.name for step in host_steps} for host, host_steps in steps.items()}
    assert set(names) == {"lb1", "lb2", "redis1", "redis2", "redis3", "db1", "web1", "web2",
                          "worker1", "worker2"}
    for host, host_names in names.items():
        assert any(name.startswith("Firewall |") for name in host_names), host
    assert any(name.startswith("PostgreSQL |") for name in names["db1"])
    assert any(name.startswith("Redis |") for name in names["redis1"])
    assert any(name.startswith("Load balancer |") for name in names["lb1"])
    assert any(name.startswith("Airflow |") for name in names["worker1"])


def test_status_expects_each_releases_unit_names():
    """`python -m ops status` looks for the units of the host's release (cluster/services.py),
    named by the same tables the tasks install them from."""
    groups = ("redis", "postgres", "lb")
    assert host_units(groups) == ["redis-server.service", "redis-sentinel.service",
                                  "postgresql@*-main.service", "haproxy.service",
                                  "keepalived.service"]
    assert host_units(groups, vip=False, release=RELEASES["almalinux", "9"]) == [
        "redis.service", "redis-sentinel.service", "postgresql.service", "haproxy.service"]
    assert host_units(groups, release=RELEASES["debian", "13"])[:3] == [
        "redis-server.service", "redis-sentinel.service", "postgresql@17-main.service"]


def test_a_moved_port_is_labelled_for_its_service_and_a_default_one_is_not(tmp_path):
    steps = deploy_steps("almalinux9", tmp_path,
                         all_data={"redis_port": 6380, "postgres_port": 5433})
    assert "semanage port -a -t redis_port_t -p tcp 6380" in _commands(steps["redis1"])
    assert "semanage port -a -t postgresql_port_t -p tcp 5433" in _commands(steps["db1"])
    # Sentinel stays on 26379, which the policy types already; 443 and 80 are http_port_t.
    labelled = [c for host in steps.values() for c in _commands(host) if "semanage" in c]
    assert not any(port in c for c in labelled for port in (" 26379", " 443", " 80"))


def test_nothing_is_asked_of_selinux_where_the_host_has_it_disabled(tmp_path, monkeypatch):
    recorded = load_system("rocky9")
    recorded["facts"]["server.Selinux"] = {"mode": "disabled"}
    monkeypatch.setattr(deploy_run, "load_system", lambda name: recorded)
    steps = deploy_steps("rocky9", tmp_path)
    commands = [c for host in steps.values() for c in _commands(host)]
    assert not any("setsebool" in c or "semanage" in c for c in commands)
    assert "postgresql-setup --initdb" in commands


@pytest.mark.parametrize("system, message", [
    ("ubuntu2404", "lb1 runs Ubuntu 24.04: apt_mirror replaces Debian's sources only"),
    ("rocky9", "lb1 installs with dnf: apt_mirror is for Debian hosts"),
])
def test_apt_mirror_stops_the_run_on_a_host_that_is_not_debian(tmp_path, system, message):
    with pytest.raises(ClusterConfigError, match=message):
        deploy_steps(system, tmp_path, all_data={"apt_mirror": "http://mirror.example/debian"})
