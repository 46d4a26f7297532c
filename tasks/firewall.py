"""The host firewall on every host (setting `firewall`): nftables rules computed from the
inventory (cluster/firewall.py), in a table of the deploy's own, loaded at boot by
airflow-cluster-firewall.service and put in force, atomically, when they change. A new rule set is
checked on the host (`nft -c`) before it replaces the one in force. A firewall service the
system ships (firewalld, ufw: cluster/systems.py) would reject what the table admits: where
the host has one, it is stopped and masked. With `firewall = False` the service is stopped
(its table deleted) and its files removed, and a firewalld or ufw is left as it is: the
cluster's ports are then the operator's to open (`python -m ops check` lists each host's).
"""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, server, systemd

from cluster.systems import COMPETING_FIREWALLS
from facts.nftables import NftTable, UnitLoadState
from operations import files as cluster_files
from operations.files import validated_file
from tasks.context import render, template_vars

RULES = "/etc/airflow-cluster/firewall.nft"
# The table the rules define (templates/etc/airflow-cluster/firewall.nft.j2).
TABLE = "airflow_cluster"
SERVICE = "airflow-cluster-firewall.service"
UNIT = f"/etc/systemd/system/{SERVICE}"


@deploy("Firewall")
def apply(run):
    tvars = template_vars(run)
    if not tvars["settings"]["firewall"]:
        _absent()
        return
    _no_competing_firewall(tvars["release"].family)
    files.directory(name="/etc/airflow-cluster", path="/etc/airflow-cluster", mode="0755")
    rules = validated_file(
        name=f"rules {RULES} (checked with nft -c)",
        content=render("templates/etc/airflow-cluster/firewall.nft.j2", tvars),
        dest=RULES,
        user="root",
        group="root",
        mode="0600",
        check="nft -c -f {path}",
    )
    unit = cluster_files.template(
        name=f"unit {SERVICE}",
        src=f"templates/etc/systemd/system/{SERVICE}.j2",
        dest=UNIT,
        mode="0644",
        **tvars,
    )
    systemd.daemon_reload(name=f"systemd re-reads {SERVICE} (it changed)", _if=unit.did_change)
    systemd.service(name=f"{SERVICE} running and enabled", service=SERVICE, running=True,
                    enabled=True)
    # Straight to nft, not through the unit's ExecReload: a oneshot's cgroup is gone once it
    # has started, and on cgroup v1 systemd may fail to make it again for the reload (the lab
    # saw exit 219/CGROUP). The file replaces the table atomically.
    server.shell(name="firewall rules in force (they changed)", commands=[f"nft -f {RULES}"],
                 _if=rules.did_change)


def _no_competing_firewall(family):
    """firewalld or ufw stopped, disabled and masked where the host has them."""
    for unit in COMPETING_FIREWALLS[family]:
        state = host.get_fact(UnitLoadState, unit=unit)
        if state["load"] == "not-found" or (state["load"] == "masked"
                                             and state["active"] != "active"):
            continue
        server.shell(name=f"{unit} stopped and masked (the deploy's table is the firewall)",
                     commands=[f"systemctl disable --quiet {unit}; systemctl mask --now {unit}"])


def _absent():
    systemd.service(name=f"no {SERVICE} (setting firewall = False)", service=SERVICE,
                    running=False, enabled=False)
    # The table itself, whatever became of the unit's ExecStop (on cgroup v1 systemd may fail to
    # run it once the oneshot's cgroup is gone).
    # Asked before the stop above runs: the table may be gone by now, hence the shell's test.
    if host.get_fact(NftTable, family="inet", table=TABLE):
        server.shell(name=f"no nftables table inet {TABLE}",
                     commands=[f"if nft list table inet {TABLE} >/dev/null 2>&1; then "
                               f"nft delete table inet {TABLE}; fi"])
    files.file(name=f"no {UNIT}", path=UNIT, present=False)
    files.file(name=f"no {RULES}", path=RULES, present=False)
