"""Hosts and groups of the cluster.

The default describes the local lab (`python -m lab up`): ten systemd-nspawn hosts on the
bridge 172.29.213.0/24. For real servers, replace the host names and addresses below and
the `_CONNECTION` block (how to reach them), and nothing else; every tunable lives in
`group_data/`.

A host may sit in several groups (here the schedulers share the API servers' hosts).
Groups: redis (3 or more, odd), postgres (optional: without it set `external_database_url`),
web, scheduler, worker, lb (1 or 2; with 2 set `lb_vip`).
"""

# Cluster address of every host: services bind to it and peers reach each other through it.
_ADDRESSES = {
    "lb1": "172.29.213.11",
    "lb2": "172.29.213.12",
    "redis1": "172.29.213.21",
    "redis2": "172.29.213.22",
    "redis3": "172.29.213.23",
    "db1": "172.29.213.31",
    "web1": "172.29.213.41",
    "web2": "172.29.213.42",
    "worker1": "172.29.213.51",
    "worker2": "172.29.213.52",
}

# How the control machine reaches the lab hosts, and how they reach package registries.
# Host data beats group_data, so these lab-only values stay out of the production defaults.
_LAB_DIR = "/var/lib/airflow-lab"
_CONNECTION = {
    "ssh_user": "root",
    "ssh_key": f"{_LAB_DIR}/id_ed25519",
    "ssh_known_hosts_file": f"{_LAB_DIR}/known_hosts",
    "ssh_strict_host_key_checking": "yes",
    "ssh_allow_agent": False,
    "ssh_look_for_keys": False,
    # The lab hosts have no route out; the lab's proxy on the bridge reaches the registries.
    "http_proxy": "http://172.29.213.1:3128",
    # HTTPS through this machine's egress is re-signed by its own CA: trust the same bundle.
    "extra_ca_certs": ["/etc/ssl/certs/ca-certificates.crt"],
    # The virtual IP the two lb hosts share (keepalived).
    "lb_vip": "172.29.213.10",
    # This machine's address on the lab bridge: the tests and `python -m ops` reach every
    # service port through the hosts' firewalls (setting admin_sources).
    "admin_sources": ["172.29.213.1"],
}


def _hosts(*names):
    return [(name, {"ssh_hostname": _ADDRESSES[name], **_CONNECTION}) for name in names]


lb = _hosts("lb1", "lb2")
redis = _hosts("redis1", "redis2", "redis3")
postgres = _hosts("db1")
web = _hosts("web1", "web2")
scheduler = _hosts("web1", "web2")
worker = _hosts("worker1", "worker2")
