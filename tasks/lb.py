"""The load balancer on the `lb` hosts: HAProxy in front of every API server, and with two
lb hosts keepalived holding `lb_vip`.

- HAProxy: HTTPS on lb_https_port with the certificate the run prepared (cluster/tls.py: the
  user's, or one signed by the CA generated on the control machine), HTTP on lb_http_port redirecting
  to it, backends = every `web` host checked with GET /api/v2/version, retries and
  redispatch, a read-only stats page on lb_stats_port behind `stats_password`.
- Every config file is installed only when its content differs, and validated on the host
  before it replaces the running one (`haproxy -c`, `keepalived -t`): a bad config fails
  the run and leaves the service on its old one. Services reload only when a file changed.
- keepalived (two lb hosts): VRRP between the two addresses (unicast, PASS authentication
  with `vrrp_password`), both BACKUP with `nopreempt` so a recovered host does not take
  the VIP back, priority by host order, and a check of HAProxy's /healthz every second that
  gives the VIP up when HAProxy stops answering.
"""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.systemd import SystemdStatus
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from cluster.errors import ClusterConfigError
from cluster.net import vip_outside_network
from cluster.systems import HAPROXY_RUNTIME_DIR_MISSING
from facts.network import InterfaceOfAddress
from operations import files as cluster_files
from operations import system
from operations.files import validated_file
from tasks.context import installed_packages, render, template_vars

HAPROXY_TEMPLATE = "templates/etc/haproxy/haproxy.cfg.j2"
KEEPALIVED_TEMPLATE = "templates/etc/keepalived/keepalived.conf.j2"
HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"
CERT_DIR = "/etc/haproxy/certs"
# The template's `crt` path.
HAPROXY_PEM = f"{CERT_DIR}/airflow-cluster.pem"
KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf"
TMPFILES = "/etc/tmpfiles.d/airflow-cluster-haproxy.conf"
# The unprivileged user keepalived runs its check script as (keepalived's default name).
SCRIPT_USER = "keepalived_script"
# keepalived 2.2's config test ends by signalling itself whatever it found (exit 143 on a
# valid config, sometimes on an invalid one too): a config is valid when it reports nothing.
KEEPALIVED_CHECK = (
    'out=$(keepalived -t -f {path} 2>&1); [ -z "$out" ] || {{ echo "$out" >&2; false; }}'
)


@deploy("Load balancer")
def apply(run):
    tvars = template_vars(run)
    settings = tvars["settings"]
    use_keepalived = run.cluster.lb_vip is not None
    haproxy_changes = _haproxy(tvars, run.tls)
    _haproxy_service(haproxy_changes)
    if use_keepalived:
        address = run.cluster.node(host.name).address
        settings["lb_vrrp_interface"] = vrrp_interface(settings, address, run.cluster.lb_vip)
        _keepalived(tvars)
    else:
        _no_keepalived()


# --- HAProxy ----------------------------------------------------------------------------------


def _haproxy(tvars, tls_files):
    if tvars["release"].family in HAPROXY_RUNTIME_DIR_MISSING:
        runtime_dir = cluster_files.template(
            name=f"{TMPFILES} (/run/haproxy, the runtime socket's directory)",
            src=f"templates{TMPFILES}.j2",
            dest=TMPFILES,
            mode="0644",
            **tvars,
        )
        server.shell(name="/run/haproxy made", commands=[f"systemd-tmpfiles --create {TMPFILES}"],
                     _if=runtime_dir.did_change)
    files.directory(name="certificate directory", path=CERT_DIR, user="root", group="root",
                    mode="0700")
    pem = validated_file(
        name=f"certificate and key {HAPROXY_PEM}",
        content=tls_files.haproxy_pem(),
        dest=HAPROXY_PEM,
        user="root",
        group="root",
        mode="0600",
        check="openssl x509 -noout -in {path} && openssl pkey -noout -in {path}",
    )
    # Validated with the new certificate in place: `haproxy -c` loads it.
    config = validated_file(
        name=f"config {HAPROXY_CFG}",
        content=render(HAPROXY_TEMPLATE, tvars),
        dest=HAPROXY_CFG,
        user="root",
        group="haproxy",
        mode="0640",
        check="haproxy -c -f {path}",
    )
    return pem, config


def _haproxy_service(changes):
    systemd.service(name="haproxy running, enabled", service="haproxy", running=True,
                    enabled=True)
    # A reload is seamless (master-worker): listeners are kept, old workers finish their
    # requests. It also replaces the package's default config right after installation.
    systemd.service(
        name="haproxy reloaded (config or certificate changed)",
        service="haproxy",
        running=None,
        command="reload",
        _if=any_changed(*changes),
    )


# --- keepalived -------------------------------------------------------------------------------


def vrrp_interface(settings, address, vip):
    """The interface keepalived moves `vip` on: the setting, or the one holding the host's
    address, whose network must then hold the VIP (checked before anything changes)."""
    if settings.get("lb_vrrp_interface"):
        return settings["lb_vrrp_interface"]
    held = host.get_fact(InterfaceOfAddress, address=address)
    if not held:
        raise ClusterConfigError(
            f"{host.name}: no network interface holds its address {address}; "
            "set lb_vrrp_interface"
        )
    problem = vip_outside_network(vip, address, held["network"])
    if problem:
        raise ClusterConfigError(f"{host.name}: {problem}")
    return held["interface"]


def _keepalived(tvars):
    was_running = host.get_fact(SystemdStatus, services=["keepalived.service"]).get(
        "keepalived.service", False
    )
    system.system_user(
        name=f"check script user {SCRIPT_USER}",
        user=SCRIPT_USER,
        home="/nonexistent",
        shell="/usr/sbin/nologin",
    )
    files.directory(name="/etc/keepalived", path="/etc/keepalived", user="root", group="root",
                    mode="0755")
    config = validated_file(
        name=f"config {KEEPALIVED_CONF}",
        content=render(KEEPALIVED_TEMPLATE, tvars),
        dest=KEEPALIVED_CONF,
        user="root",
        group="root",
        mode="0600",
        check=KEEPALIVED_CHECK,
    )
    systemd.service(name="keepalived running, enabled", service="keepalived", running=True,
                    enabled=True)
    if was_running:
        # SIGHUP: the new config without dropping the VIP (a restart would move it).
        systemd.service(
            name="keepalived reloaded (config changed)",
            service="keepalived",
            running=None,
            command="reload",
            _if=config.did_change,
        )


def _no_keepalived():
    """One lb host: clients use its own address; a keepalived left from two is stopped."""
    if "keepalived" in installed_packages():
        systemd.service(name="keepalived stopped (one lb host)", service="keepalived",
                        running=False, enabled=False)
