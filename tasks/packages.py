"""Packages: what each role needs, installed on a host in one run of its package manager.

Every package the host's roles need is installed by the common role at the start of the run
(`host_packages`), so all hosts run apt or dnf at once instead of one role after another, and
a role's own operations find its packages there. Names differ by family (cluster/systems.py);
the role tables are listed here only.
"""

from cluster.groups import AIRFLOW_GROUPS
from cluster.systems import PACKAGING, REDIS, Release, postgres_layout

# Package names the same in both families.
ROLE_PACKAGES = {
    # HAProxy's runtime socket is reached with nc, a base package.
    "lb": ["haproxy"],
}
# lb hosts holding a VIP (setting lb_vip).
KEEPALIVED = ["keepalived"]
# Airflow hosts reading a Git DAG bundle: GitPython runs git, which runs ssh.
GIT = {"debian": ["git", "openssh-client"], "rhel": ["git", "openssh-clients"]}
# Every host with the deploy's firewall (setting firewall): nft loads its rules.
FIREWALL = ["nftables"]


def role_packages(group: str, release: Release) -> list[str]:
    if group == "postgres":
        return list(postgres_layout(release).packages)
    if group == "redis":
        return list(REDIS[release.family].packages)
    return ROLE_PACKAGES.get(group, [])


def host_packages(run, groups, settings, release: Release) -> list[str]:
    """Every package a host in `groups` on `release` needs: the family's base packages, the
    release's Python, setting base_packages, then each role's."""
    packages = [*PACKAGING[release.family].base, release.python_package,
                *settings["base_packages"]]
    for group in sorted(groups):
        packages += role_packages(group, release)
    if "lb" in groups and run.cluster.lb_vip is not None:
        packages += KEEPALIVED
    if set(AIRFLOW_GROUPS) & set(groups) and run.cluster.dags.git is not None:
        packages += GIT[release.family]
    if settings["firewall"]:
        packages += FIREWALL
    return list(dict.fromkeys(packages))  # once each, in order


def module_streams(groups, release: Release) -> list[str]:
    """The AppStream module streams (RHEL family) enabled before the install: the PostgreSQL
    and Redis versions the deploy is built on, not the release's default streams."""
    if release.family != "rhel":
        return []
    streams = []
    if "postgres" in groups:
        streams.append(postgres_layout(release).module)
    if "redis" in groups:
        streams.append(REDIS[release.family].module)
    return [stream for stream in streams if stream]
