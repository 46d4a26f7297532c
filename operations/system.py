"""pyinfra's server operations for steps of every run, asked about with one fact for the whole
step: they run pyinfra's own commands only when something differs."""

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.rpm import RpmPackages
from pyinfra.facts.server import EtcHosts, Sysctl
from pyinfra.operations import apt, dnf, server

from facts.account import Account


@operation()
def system_user(user: str, home: str, shell: str, group: str | None = None,
                groups: list[str] | None = None):
    """pyinfra's `server.user(user, group, groups, home, shell, system=True,
    ensure_home=False)`, whose commands it runs when the account is missing or differs; asked
    first with one `getent` (facts/account.py) instead of pyinfra's Users fact, which lists
    every account of the host (~1.4 s per run). Those arguments are all server.user compares
    for an existing account; `groups`, the supplementary groups, exactly (None: left as they
    are)."""
    account = host.get_fact(Account, user=user)
    if account and account["home"] == home and account["shell"] == shell and (
        group is None or account["group"] == group
    ) and (groups is None or account["groups"] == sorted(set(groups))):
        host.noop(f"user {user} exists")
        return
    yield from server.user._inner(
        user=user, group=group, groups=groups, home=home, shell=shell, system=True,
        ensure_home=False,
    )


@operation()
def etc_hosts(entries: dict[str, list[str]]):
    """pyinfra's `server.etc_hosts(ip, hostnames)` for each entry (address -> names) whose
    line differs: /etc/hosts is read once for all of them, not once per entry."""
    current = host.get_fact(EtcHosts, path="/etc/hosts")
    differing = [(ip, names) for ip, names in entries.items() if current.get(ip) != names]
    if not differing:
        host.noop(f"{len(entries)} entries present in /etc/hosts")
        return
    for ip, names in differing:
        # Each rewrites the file as the one before left it (facts are asked afresh).
        yield from server.etc_hosts._inner(ip=ip, hostnames=names)


@operation()
def sysctls(values: dict[str, int]):
    """pyinfra's `server.sysctl(key, value)` for each key whose value in force differs: the
    kernel is asked once for all of them, not once per key. (The persisted file is the
    deploy's own template.)"""
    current = host.get_fact(Sysctl, keys=list(values))
    differing = {key: value for key, value in values.items() if current.get(key) != value}
    if not differing:
        host.noop(f"{len(values)} kernel settings in force")
        return
    for key, value in differing.items():
        yield from server.sysctl._inner(key=key, value=value)


@operation()
def deb_packages(packages: list[str]):
    """pyinfra's `apt.packages(packages, update=True, no_recommends=True)` when one of them is
    missing; nothing otherwise (update=True alone would refresh apt's index on every run).
    Asked while running, on every host at once, not while preparing, host after host."""
    installed = host.get_fact(DebPackages)
    if all(package in installed for package in packages):
        host.noop(f"{len(packages)} packages installed")
        return
    yield from apt.packages._inner(packages=packages, update=True, no_recommends=True)


@operation()
def rpm_packages(packages: list[str], modules: list[str] | None = None):
    """pyinfra's `dnf.packages(packages)` when one of them is missing, the AppStream module
    streams `modules` ("postgresql:16") enabled first (enabling an enabled stream changes
    nothing; another stream of the module already enabled is dnf's error); nothing otherwise."""
    installed = host.get_fact(RpmPackages)
    if all(package in installed for package in packages):
        host.noop(f"{len(packages)} packages installed")
        return
    if modules:
        yield f"dnf module enable -y {' '.join(modules)}"
    yield from dnf.packages._inner(packages=packages)
