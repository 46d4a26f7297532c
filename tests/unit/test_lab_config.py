"""Lab pieces that need no containers: inventory subnet checks, apt sources, known_hosts."""

import ipaddress
import textwrap

import pytest

from lab import image, network, sshkeys
from lab.errors import LabError
from lab.inventory import LabHost, bridge_address, lab_subnet, load_hosts
from lab.paths import LabPaths


def _hosts(*addresses):
    return [LabHost(f"h{i}", address) for i, address in enumerate(addresses)]


def test_lab_subnet_is_the_one_shared_24():
    subnet = lab_subnet(_hosts("172.29.213.11", "172.29.213.52"))
    assert subnet == ipaddress.IPv4Network("172.29.213.0/24")
    assert str(bridge_address(subnet)) == "172.29.213.1"


@pytest.mark.parametrize("addresses, message", [
    (("172.29.213.11", "172.29.214.11"), "share one /24"),
    (("172.29.213.1", "172.29.213.11"), "reserved"),
    (("172.29.213.255",), "reserved"),
    (("172.29.213.11", "172.29.213.11"), "share the address"),
])
def test_lab_subnet_refuses(addresses, message):
    with pytest.raises(LabError, match=message):
        lab_subnet(_hosts(*addresses))


def test_load_hosts_reads_a_pyinfra_inventory(tmp_path):
    inventory = tmp_path / "inventory.py"
    inventory.write_text(textwrap.dedent("""
        _A = {"w1": "10.9.8.11", "w2": "10.9.8.12", "w3": "10.9.8.13"}
        worker = [(name, {"ssh_hostname": address}) for name, address in _A.items()]
        web = [("w1", {"ssh_hostname": "10.9.8.11"})]
    """))
    assert load_hosts(inventory) == [
        LabHost("w1", "10.9.8.11"), LabHost("w2", "10.9.8.12"), LabHost("w3", "10.9.8.13"),
    ]


def test_subnet_overlapping_a_route_is_refused(monkeypatch):
    routes = [
        {"dst": "default", "dev": "eth0"},
        {"dst": "192.0.2.0/24", "dev": "eth0"},
        {"dst": "172.29.213.0/24", "dev": "alab0"},
    ]
    monkeypatch.setattr(network, "_ip_json", lambda *args: routes)
    network.check_subnet_is_free(ipaddress.IPv4Network("172.29.213.0/24"), "alab0")
    with pytest.raises(LabError, match="overlaps the route 192.0.2.0/24"):
        network.check_subnet_is_free(ipaddress.IPv4Network("192.0.2.0/24"), "alab0")


def test_apt_sources_deb822_and_one_line(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d/debian.sources").write_text(textwrap.dedent("""
        Types: deb
        URIs: http://mirror.example/debian/
        Suites: bookworm bookworm-updates

        Types: deb
        URIs: http://mirror.example/debian-security
        Suites: bookworm-security
    """))
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb [arch=amd64] https://other.example/debian bookworm main\n"
    )
    uris = image.apt_source_uris(tmp_path)
    assert uris == [
        "http://mirror.example/debian",
        "http://mirror.example/debian-security",
        "https://other.example/debian",
    ]
    assert image.debian_mirror(uris) == "http://mirror.example/debian"
    assert image.security_mirror(uris) == "http://mirror.example/debian-security"
    assert image.allowed_hosts(uris) == [
        "deb.debian.org", "files.pythonhosted.org", "mirror.example", "other.example",
        "pypi.org", "security.debian.org",
    ]


def test_apt_sources_fallbacks(tmp_path):
    assert image.debian_mirror(image.apt_source_uris(tmp_path)) == "http://deb.debian.org/debian"
    assert image.security_mirror([]) == "http://security.debian.org/debian-security"


def test_known_hosts_lists_each_address_with_its_key(tmp_path):
    path = tmp_path / "known_hosts"
    sshkeys.write_known_hosts(path, {
        "172.29.213.11": "ssh-ed25519 AAAAone root@lb1",
        "172.29.213.12": "ssh-ed25519 AAAAtwo root@lb2",
    })
    assert path.read_text() == (
        "172.29.213.11 ssh-ed25519 AAAAone\n172.29.213.12 ssh-ed25519 AAAAtwo\n"
    )


def test_lab_distro_picks_the_base_image_and_refuses_an_unknown_release(monkeypatch, tmp_path):
    monkeypatch.setenv("LAB_DIR", str(tmp_path))
    monkeypatch.delenv("LAB_DISTRO", raising=False)
    assert LabPaths.from_env().base == tmp_path / "base-bookworm"
    monkeypatch.setenv("LAB_DISTRO", "trixie")
    paths = LabPaths.from_env()
    assert (paths.base, paths.base_partial) == (tmp_path / "base-trixie",
                                                tmp_path / ".base-trixie.partial")
    monkeypatch.setenv("LAB_DISTRO", "sid")
    with pytest.raises(LabError, match="LAB_DISTRO='sid': the lab boots bookworm or trixie"):
        LabPaths.from_env()
