"""Base of every host: proxy and CA trust for apt and pip, the packages of all its roles
(tasks/packages.py), kernel settings, the cluster's names in /etc/hosts, and the airflow
system user with its directories."""

from pathlib import Path
from urllib.parse import urlsplit

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.server import LinuxDistribution
from pyinfra.operations import apt, files, server
from pyinfra.operations.util import any_changed

from operations import apt_sources, system
from operations import files as cluster_files
from tasks.context import render, template_vars
from tasks.packages import host_packages

CA_DIR = "/usr/local/share/ca-certificates"


@deploy("Common")
def apply(run):
    tvars = template_vars(run)
    settings = tvars["settings"]
    _package_access(settings, tvars)
    packages = host_packages(run, host.groups, settings)
    _extra_ca_certs(settings, packages)
    _packages(packages)
    _kernel_settings(settings, tvars)
    _cluster_hosts(run.cluster)
    _airflow_user(settings)


def _package_access(settings, tvars):
    """apt's proxy and sources must be in place before the first package is installed."""
    mirror = settings["apt_mirror"]
    if settings["http_proxy"]:
        cluster_files.template(
            name="apt proxy",
            src="templates/etc/apt/apt.conf.d/80proxy.j2",
            dest="/etc/apt/apt.conf.d/80proxy",
            mode="0644",
            # A local mirror is reached directly.
            apt_direct_hosts=[urlsplit(mirror).hostname] if mirror else [],
            **tvars,
        )
    else:
        files.file(name="no apt proxy", path="/etc/apt/apt.conf.d/80proxy", present=False)
    if mirror:
        release = host.get_fact(LinuxDistribution)["release_meta"]
        sources = apt_sources.sources(
            name="apt sources: the mirror's (apt_mirror)",
            content=render("templates/etc/apt/sources.list.j2",
                           {**tvars, "codename": release["VERSION_CODENAME"]}),
        )
    else:
        sources = apt_sources.sources(name="apt sources: the host's own", content=None)
    apt.update(name="apt index refreshed for the new sources", _if=sources.did_change)
    cluster_files.template(
        name="pip proxy and trust store",
        src="templates/etc/pip.conf.j2",
        dest="/etc/pip.conf",
        mode="0644",
        **tvars,
    )


def _packages(packages):
    """Every package of the host's roles, in one apt run on every host at once."""
    system.deb_packages(name="packages of the host's roles (one apt run)", packages=packages)


def _extra_ca_certs(settings, packages):
    """Placed before the packages: on a fresh host, installing ca-certificates builds the trust
    store with them in it, and no second rebuild is needed."""
    uploads = []
    for index, local_path in enumerate(settings["extra_ca_certs"]):
        uploads.append(
            cluster_files.put(
                name=f"extra CA certificate {local_path}",
                src=local_path,
                dest=f"{CA_DIR}/airflow-cluster-{index}-{Path(local_path).stem}.crt",
                mode="0644",
            )
        )
    installs_store = ("ca-certificates" in packages
                      and "ca-certificates" not in host.get_fact(DebPackages))
    if uploads and not installs_store:
        server.shell(
            name="rebuild the trust store",
            commands=["update-ca-certificates"],
            _if=any_changed(*uploads),
        )


def _kernel_settings(settings, tvars):
    cluster_files.template(
        name="sysctl settings, persisted",
        src="templates/etc/sysctl.d/60-airflow-cluster.conf.j2",
        dest="/etc/sysctl.d/60-airflow-cluster.conf",
        mode="0644",
        **tvars,
    )
    system.sysctls(name="kernel settings in force", values=dict(settings["sysctl"]))


def _cluster_hosts(cluster):
    """Every node resolves every other by name (Celery hostnames, task log fetching)."""
    system.etc_hosts(
        name="/etc/hosts: every node of the cluster",
        entries={node.address: [node.name] for node in cluster.nodes.values()},
    )


def _airflow_user(settings):
    user, group = settings["airflow_user"], settings["airflow_group"]
    server.group(name="airflow group", group=group, system=True)
    system.system_user(  # no home created: made below with the mode we want
        name="airflow user",
        user=user,
        group=group,
        home=settings["airflow_state_dir"],
        shell="/usr/sbin/nologin",
    )
    # Config and code are root's (the airflow user reads them); logs and state are its own.
    for path, owner in (
        (settings["airflow_home"], "root"),
        (f"{settings['airflow_home']}/dags", "root"),
        (f"{settings['airflow_home']}/plugins", "root"),
        (settings["airflow_log_dir"], user),
        (settings["airflow_state_dir"], user),
    ):
        files.directory(name=f"directory {path}", path=path, user=owner, group=group, mode="0750")
