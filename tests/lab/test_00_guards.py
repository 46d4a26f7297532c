"""Bad input stops a deploy before anything on any host changes.

These run first, on the freshly booted lab, before the session's first deploy."""

import re

from lab.client import INVENTORY, run_pyinfra

# What the common role would change first on a host that was never deployed to.
FINGERPRINT = (
    "sha256sum /etc/pip.conf /etc/hosts /etc/passwd 2>&1; "
    "ls -la /etc/apt/apt.conf.d /etc/sysctl.d /usr/local/share/ca-certificates 2>&1"
)


def fingerprints(hosts):
    return {name: host.run(FINGERPRINT).stdout for name, host in hosts.items()}


def inventory_variant(tmp_path, old, new):
    source = INVENTORY.read_text()
    assert old in source, f"the lab inventory no longer contains {old!r}"
    path = tmp_path / "variant_inventory.py"
    path.write_text(source.replace(old, new))
    return path


def test_invalid_inventory_is_refused_and_changes_nothing(lab, hosts, tmp_path):
    bad = inventory_variant(
        tmp_path,
        'redis = _hosts("redis1", "redis2", "redis3")',
        'redis = _hosts("redis1", "redis2")',
    )
    before = fingerprints(hosts)
    run = run_pyinfra(inventory=bad, timeout=600)
    assert run.returncode != 0, run.describe()
    assert re.search(r"redis", run.stderr, re.I) and re.search(r"3|odd", run.stderr), run.describe()
    assert fingerprints(hosts) == before


def test_unreachable_host_stops_deploy_before_any_change(lab, hosts, tmp_path):
    # .99 is in the lab's subnet and no lab host has it: nothing answers there.
    bad = inventory_variant(
        tmp_path,
        '"worker2": "172.29.213.52",',
        '"worker2": "172.29.213.52",\n    "worker9": "172.29.213.99",',
    )
    bad.write_text(
        bad.read_text().replace(
            'worker = _hosts("worker1", "worker2")',
            'worker = _hosts("worker1", "worker2", "worker9")',
        )
    )
    before = fingerprints(hosts)
    run = run_pyinfra(inventory=bad, timeout=900)
    assert run.returncode != 0, run.describe()
    assert "worker9" in run.stderr + run.stdout, run.describe()
    assert fingerprints(hosts) == before
