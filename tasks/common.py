"""Base of every host: its operating system checked (cluster/systems.py), proxy and CA trust
for the package manager and pip, the packages of all its roles (tasks/packages.py), kernel
settings, the cluster's names in /etc/hosts, and the airflow system user with its
directories."""

from pathlib import Path
from urllib.parse import urlsplit

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import LinuxDistribution
from pyinfra.operations import apt, files, server
from pyinfra.operations.util import any_changed

from cluster.errors import ClusterConfigError
from operations import apt_sources, system
from operations import files as cluster_files
from tasks.context import installed_packages, render, template_vars
from tasks.packages import host_packages, module_streams

# dnf's configuration: the proxy goes in its [main] section.
DNF_CONF = "/etc/dnf/dnf.conf"


@deploy("Common")
def apply(run):
    tvars = template_vars(run)  # stops the run here for an unsupported system
    settings, release = tvars["settings"], tvars["release"]
    if release.family == "debian":
        _apt_access(settings, tvars)
    else:
        _dnf_access(settings)
    _pip_access(tvars)
    packages = host_packages(run, host.groups, settings, release)
    _extra_ca_certs(settings, packages, tvars["packaging"])
    if release.family == "debian":
        system.deb_packages(name="packages of the host's roles (one apt run)", packages=packages)
    else:
        system.rpm_packages(name="packages of the host's roles (one dnf run)", packages=packages,
                            modules=module_streams(host.groups, release))
    _kernel_settings(settings, tvars)
    _cluster_hosts(run.cluster)
    _airflow_user(settings)


def _apt_access(settings, tvars):
    """apt's proxy and sources must be in place before the first package is installed."""
    mirror = settings["apt_mirror"]
    if mirror and not tvars["release"].debian_archive:
        raise ClusterConfigError(
            f"{host.name} runs {tvars['release'].name}: apt_mirror replaces Debian's sources "
            "only; point the host's own sources at your mirror and unset apt_mirror")
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


def _dnf_access(settings):
    """dnf's proxy (setting http_proxy), before the first package is installed. Its
    repositories are the host's own (a local mirror is configured in its .repo files)."""
    if settings["apt_mirror"]:
        raise ClusterConfigError(
            f"{host.name} installs with dnf: apt_mirror is for Debian hosts; point the host's "
            "own .repo files at your mirror and unset apt_mirror")
    if settings["http_proxy"]:
        # dnf.conf has one section, [main]: a line added at its end is in it.
        files.line(name="dnf proxy", path=DNF_CONF, line="^proxy=.*",
                   replace=f"proxy={settings['http_proxy']}")


def _pip_access(tvars):
    cluster_files.template(
        name="pip proxy and trust store",
        src="templates/etc/pip.conf.j2",
        dest="/etc/pip.conf",
        mode="0644",
        **tvars,
    )


def _extra_ca_certs(settings, packages, packaging):
    """Placed before the packages: on a fresh host, installing ca-certificates builds the trust
    store with them in it, and no second rebuild is needed."""
    uploads = []
    for index, local_path in enumerate(settings["extra_ca_certs"]):
        uploads.append(
            cluster_files.put(
                name=f"extra CA certificate {local_path}",
                src=local_path,
                dest=f"{packaging.ca_dir}/airflow-cluster-{index}-{Path(local_path).stem}.crt",
                mode="0644",
            )
        )
    installs_store = ("ca-certificates" in packages
                      and "ca-certificates" not in installed_packages())
    if uploads and not installs_store:
        server.shell(
            name="rebuild the trust store",
            commands=[packaging.ca_update],
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
