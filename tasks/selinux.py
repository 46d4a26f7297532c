"""SELinux on the RHEL family: what each role's services need from the targeted policy
(cluster/systems.py SELINUX), set before the services start. SELinux stays in the mode the
host has it in (never disabled); on a host where it is disabled there is nothing to set.

- Booleans, persistently (`setsebool -P`, pyinfra's selinux.boolean).
- Ports a role's settings move off the ones the policy gives their service's type: labelled
  with it (`semanage port`, pyinfra's selinux.port). Ports the policy already types are left.
"""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import Selinux
from pyinfra.operations import selinux
from pyinfra.operations.selinux import Boolean

from cluster.systems import SELINUX, SELINUX_DEFAULT_PORTS
from tasks.context import host_release, host_settings


@deploy("SELinux")
def apply():
    if host_release().family != "rhel":
        return
    # sestatus's "SELinux status": enabled (enforcing or permissive) or disabled.
    if host.get_fact(Selinux)["mode"] != "enabled":
        host.noop("SELinux is disabled on this host: no boolean or port to set")
        return
    settings = host_settings()
    for group in sorted(set(host.groups) & set(SELINUX)):
        needs = SELINUX[group]
        for boolean in needs.booleans:
            selinux.boolean(name=f"SELinux boolean {boolean} on ({group})", bool_name=boolean,
                            value=Boolean.ON, persistent=True)
        for setting, se_type in needs.ports:
            port = settings[setting]
            if port in SELINUX_DEFAULT_PORTS[se_type]:
                continue
            selinux.port(name=f"SELinux: tcp/{port} ({setting}) is {se_type}",
                         protocol="tcp", port_num=port, se_type=se_type)
