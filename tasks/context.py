"""The values every template and task of a host is rendered with."""

from pyinfra import host
from pyinfra.api.util import get_template

from cluster.paths import PROJECT_DIR


def host_settings():
    """This host's settings: group_data and inventory data merged by pyinfra (host wins)."""
    return host.data.dict()


def template_vars(run):
    """The names every template may use (see tasks/__init__.py)."""
    return {
        "cluster": run.cluster,
        "node": run.cluster.node(host.name),
        "settings": host_settings(),
        "secrets": run.secrets,
        "connections": run.connections,
    }


def render(template, tvars) -> str:
    """A template rendered exactly as files.template renders it, from the project dir."""
    return get_template(str(PROJECT_DIR / template)).render(tvars)
