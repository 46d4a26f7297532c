"""Templates: each says it is managed by the deploy, none is dead, and the common role's
render for every lab host with pyinfra's own Jinja2 settings (StrictUndefined).

Role templates are rendered by their role's own tests (test_datatier*, test_airflow*,
test_lb*), with the extra values their tasks compute."""

import re
import subprocess
from pathlib import Path

import pytest
from pyinfra.api.util import get_template

from cluster.systems import PACKAGING

from cluster.model import build_cluster, load_inventory
from cluster.secret_store import load_or_create

PROJECT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted(p.relative_to(PROJECT).as_posix() for p in (PROJECT / "templates").rglob("*.j2"))
COMMON_TEMPLATES = [
    "templates/etc/apt/apt.conf.d/80proxy.j2",
    "templates/etc/pip.conf.j2",
    "templates/etc/sysctl.d/60-airflow-cluster.conf.j2",
]
# The tasks, and the unit names they install (cluster/services.py).
TASK_SOURCES = "\n".join(
    p.read_text() for p in [*(PROJECT / "tasks").glob("*.py"), PROJECT / "cluster" / "services.py"]
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    inventory = load_inventory(str(PROJECT / "inventory.py"), project_dir=str(PROJECT))
    secrets = load_or_create(tmp_path_factory.mktemp("secrets") / "cluster.json")
    return inventory, build_cluster(inventory), secrets


@pytest.mark.parametrize("template", TEMPLATES)
def test_template_says_it_is_managed(template):
    head = (PROJECT / template).read_text()[:600]
    assert "Managed by the airflow-cluster deploy" in head


@pytest.mark.parametrize("template", TEMPLATES)
def test_template_is_used_by_a_task(template):
    # Tasks may build the path from parts (a version, a unit name): look for the file's name,
    # or the name of what it renders.
    name = Path(template).name
    candidates = {name, name.removesuffix(".j2"), name.split(".")[0]}
    assert any(candidate in TASK_SOURCES for candidate in candidates), f"no task uses {template}"


@pytest.mark.parametrize("template", COMMON_TEMPLATES)
def test_common_template_renders_for_every_host(lab, template):
    inventory, cluster, secrets = lab
    for name in cluster.nodes:
        settings = inventory.get_host(name).data.dict()
        rendered = get_template(str(PROJECT / template)).render(
            cluster=cluster, node=cluster.node(name), settings=settings, secrets=secrets,
            apt_direct_hosts=[], packaging=PACKAGING["debian"],
        )
        assert not re.search(r"\bNone\b", rendered), f"{template} renders None for {name}"
        if "sysctl" in template:
            for key, value in settings["sysctl"].items():
                assert f"{key} = {value}\n" in rendered


@pytest.mark.parametrize("family, bundle", [("debian", "/etc/ssl/certs/ca-certificates.crt"),
                                            ("rhel", "/etc/pki/tls/certs/ca-bundle.crt")])
def test_pip_conf_without_proxy_has_no_proxy_line(lab, family, bundle):
    inventory, cluster, secrets = lab
    settings = dict(inventory.get_host("web1").data.dict(), http_proxy=None)
    rendered = get_template(str(PROJECT / "templates/etc/pip.conf.j2")).render(
        cluster=cluster, node=cluster.node("web1"), settings=settings, secrets=secrets,
        packaging=PACKAGING[family],
    )
    assert "proxy" not in rendered.replace("# Setting: http_proxy.", "")
    assert f"cert = {bundle}" in rendered


def test_apt_mirror_is_the_only_source_and_reached_directly(lab, tmp_path):
    inventory, cluster, secrets = lab
    settings = dict(inventory.get_host("web1").data.dict(),
                    apt_mirror="http://mirror.example:3142/debian",
                    apt_security_mirror="http://mirror.example:3142/debian-security")
    names = dict(cluster=cluster, node=cluster.node("web1"), settings=settings, secrets=secrets)
    sources = get_template(str(PROJECT / "templates/etc/apt/sources.list.j2")).render(
        codename="bookworm", **names)
    assert [line for line in sources.splitlines() if not line.startswith("#")] == [
        "deb http://mirror.example:3142/debian bookworm main",
        "deb http://mirror.example:3142/debian bookworm-updates main",
        "deb http://mirror.example:3142/debian-security bookworm-security main",
    ]
    proxy = tmp_path / "80proxy"
    proxy.write_text(get_template(str(PROJECT / "templates/etc/apt/apt.conf.d/80proxy.j2")).render(
        apt_direct_hosts=["mirror.example"], **names))
    # apt's own parser reads what it means.
    dump = subprocess.run(["apt-config", "-c", str(proxy), "dump", "Acquire"],
                          capture_output=True, text=True, check=True).stdout
    assert 'Acquire::http::Proxy "http://172.29.213.1:3128";' in dump
    assert 'Acquire::http::Proxy::mirror.example "DIRECT";' in dump
    assert 'Acquire::https::Proxy::mirror.example "DIRECT";' in dump


def test_strict_undefined_catches_a_missing_name(tmp_path):
    bad = tmp_path / "bad.j2"
    bad.write_text("{{ settings.no_such_setting }}\n")
    with pytest.raises(Exception, match="no_such_setting"):
        get_template(str(bad)).render(settings={})
