"""The values every template and task of a host is rendered with."""

import weakref

from pyinfra import host
from pyinfra.api.util import get_template
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.rpm import RpmPackages
from pyinfra.context import ctx_host
from pyinfra.facts.server import LinuxDistribution

from cluster.paths import PROJECT_DIR
from cluster.systems import PACKAGING, REDIS, Release, system_of


def host_settings():
    """This host's settings: group_data and inventory data merged by pyinfra (host wins)."""
    return host.data.dict()


# Host of the run (its Host object, not its name: another run may reuse the name) -> its
# release, asked once: every role's template_vars needs it, and each question is one more
# command on the host while pyinfra prepares it (pyinfra 3 caches no fact).
_RELEASES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def host_release() -> Release:
    """This host's operating system (cluster/systems.py); an unsupported one stops the run
    while pyinfra prepares it, before any operation runs on any host."""
    current = ctx_host.get()
    if current not in _RELEASES:
        _RELEASES[current] = system_of(host.name, host.get_fact(LinuxDistribution))
    return _RELEASES[current]


def installed_packages() -> dict:
    """The host's installed packages (name -> versions), asked of its family's package
    database: dpkg or rpm."""
    return host.get_fact(DebPackages if host_release().family == "debian" else RpmPackages)


def template_vars(run):
    """The names every template may use (see tasks/__init__.py)."""
    release = host_release()
    return {
        "cluster": run.cluster,
        "node": run.cluster.node(host.name),
        "settings": host_settings(),
        "secrets": run.secrets,
        "connections": run.connections,
        "release": release,
        "packaging": PACKAGING[release.family],
        "redis": REDIS[release.family],
    }


def render(template, tvars) -> str:
    """A template rendered exactly as files.template renders it, from the project dir."""
    return get_template(str(PROJECT_DIR / template)).render(tvars)
