"""Debian packages: what each role needs, installed on a host in one apt run.

Every package the host's roles need is installed by the common role at the start of the run
(`host_packages`), so all hosts run apt at once instead of one role after another, and a role's
own operations find its packages there. One table: a role's packages are listed here only.
"""

from cluster.groups import AIRFLOW_GROUPS

POSTGRES_VERSION = 15

ROLE_PACKAGES = {
    "postgres": [f"postgresql-{POSTGRES_VERSION}"],
    # redis-tools is redis-cli: the facts and operations use it.
    "redis": ["redis-server", "redis-sentinel", "redis-tools"],
    # netcat-openbsd: how the rolling restarts and `ops status` talk to HAProxy's runtime
    # socket (operations/haproxy.py).
    "lb": ["haproxy", "netcat-openbsd"],
}
# lb hosts holding a VIP (setting lb_vip).
KEEPALIVED = ["keepalived"]
# Airflow hosts reading a Git DAG bundle: GitPython runs git, which runs ssh.
GIT = ["git", "openssh-client"]
# Every host with the deploy's firewall (setting firewall): nft loads its rules.
FIREWALL = ["nftables"]


def host_packages(run, groups, settings) -> list[str]:
    """Every package a host in `groups` needs: the base packages, then each role's."""
    packages = list(settings["base_packages"])
    for group in sorted(groups):
        packages += ROLE_PACKAGES.get(group, [])
    if "lb" in groups and run.cluster.lb_vip is not None:
        packages += KEEPALIVED
    if set(AIRFLOW_GROUPS) & set(groups) and run.cluster.dags.git is not None:
        packages += GIT
    if settings["firewall"]:
        packages += FIREWALL
    return list(dict.fromkeys(packages))  # once each, in order
