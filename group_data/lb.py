"""Settings of the `lb` hosts: HAProxy (TLS, health checks, stats) and, with two of them,
keepalived holding `lb_vip` (defined in group_data/all.py with the lb ports).

Override here or per host in `inventory.py`. The TLS and VRRP settings must be the same on
both lb hosts (the deploy refuses otherwise).
"""

# --- TLS (HTTPS on lb_https_port) -------------------------------------------------------------
# Your own certificate: PEM files on the control machine (relative to the project dir), the
# certificate (followed by its intermediate chain) and its private key. None (both) = use a
# certificate signed by a small CA generated once into the secrets dir (.secrets/tls/).
lb_tls_cert = None
lb_tls_key = None
# PEM of the CA that signed lb_tls_cert, trusted by the workers calling the execution API
# through the load balancer. None with your own certificate = a publicly trusted CA.
lb_tls_ca = None
# Extra DNS names or IP addresses put in the generated certificate (e.g. "airflow.example.com");
# the VIP, every lb address and every lb host name are always in it.
lb_tls_names = []

# --- HAProxy ----------------------------------------------------------------------------------
# User name of the stats page on lb_stats_port (its password is `stats_password` in the secrets).
lb_stats_user = "admin"
# Health check of every API server (GET /api/v2/version): interval in milliseconds, and how many
# failed / passed checks in a row mark it down / up.
lb_check_interval_ms = 1000
lb_check_fall = 2
lb_check_rise = 2
# Seconds of client inactivity, and of waiting for an API server's response, before HAProxy
# gives up.
lb_timeout_client = 120
lb_timeout_server = 120

# --- keepalived (two lb hosts) ----------------------------------------------------------------
# VRRP virtual_router_id (1-255): must differ from any other VRRP group on the same network.
lb_vrrp_router_id = 51
# Network interface carrying VRRP and the VIP; None = the one holding the host's address.
lb_vrrp_interface = None
