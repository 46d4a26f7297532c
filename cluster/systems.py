"""The operating systems the deploy supports, and every way they differ, in one place.

A host's system is read from its /etc/os-release (pyinfra's LinuxDistribution fact) when its
deploy starts, never from a setting: `system_of` answers the release's row of RELEASES, or
stops the run with one message (before any operation runs on any host) for a system not in
it. The tasks take their packages, paths, unit names and security steps from the tables below:
one per role, keyed by family ("debian": Debian and Ubuntu; "rhel": AlmaLinux and Rocky
Linux) and, where a release differs within its family, by the release itself.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from .errors import ClusterConfigError


@dataclass(frozen=True)
class Release:
    """One supported release: what it is and what of it the deploy builds on."""

    # "Debian 12": messages and the README's table.
    name: str
    # "debian" (apt, Debian's packaging) or "rhel" (dnf, SELinux).
    family: str
    # The Python interpreter Airflow's virtualenv is made from, and its package. Airflow 3.3
    # needs 3.10 or newer: RHEL 9's python3 is 3.9, its AppStream has python3.12.
    python: str
    python_package: str
    # The PostgreSQL major version of the release (RHEL: the AppStream module stream).
    postgres: int
    # Its packages come from Debian's archive: setting apt_mirror applies.
    debian_archive: bool = False


# os-release (ID, VERSION_ID's major part; Ubuntu's whole VERSION_ID) -> Release.
RELEASES: Mapping[tuple[str, str], Release] = {
    ("debian", "12"): Release("Debian 12", "debian", "python3", "python3", 15, True),
    ("debian", "13"): Release("Debian 13", "debian", "python3", "python3", 17, True),
    ("ubuntu", "24.04"): Release("Ubuntu 24.04", "debian", "python3", "python3", 16),
    ("almalinux", "9"): Release("AlmaLinux 9", "rhel", "python3.12", "python3.12", 16),
    ("rocky", "9"): Release("Rocky Linux 9", "rhel", "python3.12", "python3.12", 16),
}


def system_of(host_name: str, distribution: dict) -> Release:
    """The Release of a host whose LinuxDistribution fact is `distribution`."""
    meta = distribution.get("release_meta") or {}
    os_id = (meta.get("ID") or "").lower()
    version = meta.get("VERSION_ID") or ""
    key = (os_id, version if os_id == "ubuntu" else version.split(".")[0])
    if key not in RELEASES:
        found = meta.get("PRETTY_NAME") or " ".join(filter(None, (os_id, version))) or "unknown"
        supported = ", ".join(release.name for release in RELEASES.values())
        raise ClusterConfigError(f"{host_name} runs {found}, which the deploy does not support "
                                 f"(supported: {supported}); nothing was changed")
    return RELEASES[key]


@dataclass(frozen=True)
class Packaging:
    """How a family installs packages and trusts certificates."""

    # What every host needs, besides each role's packages: the CA store, curl (units' health
    # waits, keepalived's check), ps/pgrep, ip/ss, nc (HAProxy's runtime socket), logrotate.
    base: tuple[str, ...]
    # Where an extra CA certificate goes, and the command that rebuilds the trust store.
    ca_dir: str
    ca_update: str
    # The trust store's bundle (pip, uv, git, Airflow's requests).
    ca_bundle: str


PACKAGING: Mapping[str, Packaging] = {
    "debian": Packaging(
        base=("ca-certificates", "curl", "procps", "iproute2", "netcat-openbsd", "logrotate"),
        ca_dir="/usr/local/share/ca-certificates",
        ca_update="update-ca-certificates",
        ca_bundle="/etc/ssl/certs/ca-certificates.crt",
    ),
    "rhel": Packaging(
        # policycoreutils-python-utils: semanage, which labels the services' ports (SELinux).
        base=("ca-certificates", "curl", "procps-ng", "iproute", "nmap-ncat", "logrotate",
              "policycoreutils-python-utils"),
        ca_dir="/etc/pki/ca-trust/source/anchors",
        ca_update="update-ca-trust extract",
        ca_bundle="/etc/pki/tls/certs/ca-bundle.crt",
    ),
}


@dataclass(frozen=True)
class PostgresLayout:
    """The distribution's PostgreSQL: its packages, where its cluster lives, its unit."""

    packages: tuple[str, ...]
    # Read after postgresql.conf: the deploy's settings file goes in it.
    conf_d: str
    hba_file: str
    data_dir: str
    # The unit of the cluster itself, and the one `enabled` at boot.
    service: str
    boot_service: str
    # RHEL: the AppStream module stream enabled before the install, and the cluster is made by
    # postgresql-setup (Debian's package makes and starts `VERSION/main` itself).
    module: str | None = None
    initdb: str | None = None


def postgres_layout(release: Release) -> PostgresLayout:
    version = release.postgres
    if release.family == "debian":
        config = f"/etc/postgresql/{version}/main"
        return PostgresLayout(
            packages=(f"postgresql-{version}",),
            conf_d=f"{config}/conf.d",
            hba_file=f"{config}/pg_hba.conf",
            data_dir=f"/var/lib/postgresql/{version}/main",
            # postgresql.service only starts and stops every cluster.
            service=f"postgresql@{version}-main",
            boot_service="postgresql",
        )
    data = "/var/lib/pgsql/data"
    return PostgresLayout(
        packages=("postgresql-server",),
        # postgresql.conf of RHEL's initdb includes no directory: the deploy adds the line.
        conf_d=f"{data}/conf.d",
        hba_file=f"{data}/pg_hba.conf",
        data_dir=data,
        service="postgresql",
        boot_service="postgresql",
        module=f"postgresql:{version}",
        initdb="postgresql-setup --initdb",
    )


@dataclass(frozen=True)
class RedisLayout:
    """The distribution's Redis and Sentinel: packages, units and the files they start with."""

    packages: tuple[str, ...]
    server_unit: str
    sentinel_unit: str
    server_config: str
    sentinel_config: str
    # Where each writes its log and pid file (the unit's log and runtime directories).
    server_log: str
    sentinel_log: str
    server_pidfile: str
    sentinel_pidfile: str
    # RHEL: the AppStream module stream (its default stream is Redis 6.2).
    module: str | None = None

    @property
    def server_override(self) -> str:
        """The deploy's drop-in of the server's unit."""
        return f"/etc/systemd/system/{self.server_unit}.d/airflow-cluster.conf"


REDIS: Mapping[str, RedisLayout] = {
    # redis-tools is redis-cli: the facts and operations use it.
    "debian": RedisLayout(
        packages=("redis-server", "redis-sentinel", "redis-tools"),
        server_unit="redis-server.service",
        sentinel_unit="redis-sentinel.service",
        server_config="/etc/redis/redis.conf",
        sentinel_config="/etc/redis/sentinel.conf",
        server_log="/var/log/redis/redis-server.log",
        sentinel_log="/var/log/redis/redis-sentinel.log",
        server_pidfile="/run/redis/redis-server.pid",
        sentinel_pidfile="/run/sentinel/redis-sentinel.pid",
    ),
    # One package: server, Sentinel and redis-cli.
    "rhel": RedisLayout(
        packages=("redis",),
        server_unit="redis.service",
        sentinel_unit="redis-sentinel.service",
        server_config="/etc/redis/redis.conf",
        sentinel_config="/etc/redis/sentinel.conf",
        server_log="/var/log/redis/redis.log",
        sentinel_log="/var/log/redis/sentinel.log",
        # Under /run/redis, the package's runtime directory (under systemd's supervision a pid
        # file Redis cannot write is a warning in its log, nothing more).
        server_pidfile="/run/redis/redis.pid",
        sentinel_pidfile="/run/redis/sentinel.pid",
        module="redis:7",
    ),
}


# Families whose HAProxy package makes no /run/haproxy (haproxy.cfg's runtime socket goes
# there): the deploy adds a tmpfiles.d entry of its own.
HAPROXY_RUNTIME_DIR_MISSING = frozenset({"rhel"})


@dataclass(frozen=True)
class Selinux:
    """What a role's services need from SELinux's targeted policy (RHEL family), set with
    pyinfra's selinux operations; SELinux itself stays as the host has it."""

    # Booleans turned on, persistently.
    booleans: tuple[str, ...] = ()
    # (setting naming a TCP port, SELinux type it must carry): a port the policy does not
    # already give that type (a non-default one) is labelled with it.
    ports: tuple[tuple[str, str], ...] = ()


SELINUX: Mapping[str, Selinux] = {
    # HAProxy connects to the API servers' port; keepalived's check runs curl to HAProxy.
    "lb": Selinux(
        booleans=("haproxy_connect_any", "keepalived_connect_any"),
        ports=(("lb_http_port", "http_port_t"), ("lb_https_port", "http_port_t"),
               ("lb_stats_port", "http_port_t")),
    ),
    "redis": Selinux(ports=(("redis_port", "redis_port_t"), ("sentinel_port", "redis_port_t"))),
    "postgres": Selinux(ports=(("postgres_port", "postgresql_port_t"),)),
}
# The ports each type carries in the targeted policy as shipped: nothing to label for them.
SELINUX_DEFAULT_PORTS: Mapping[str, frozenset[int]] = {
    "http_port_t": frozenset({80, 81, 443, 488, 8008, 8009, 8443, 9000}),
    "redis_port_t": frozenset({6379, 16379, 26379}),
    "postgresql_port_t": frozenset({5432, 9898}),
}


# Firewall services a host of the family may run besides the deploy's own nftables table
# (cluster/firewall.py): their rules would reject what the table admits (firewalld's default
# zone, an enabled ufw), so with setting `firewall` on, each one the host has is stopped and
# masked: the table is the host's firewall.
COMPETING_FIREWALLS: Mapping[str, tuple[str, ...]] = {
    "debian": ("ufw.service",),
    "rhel": ("firewalld.service",),
}
