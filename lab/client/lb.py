"""Lab's load balancer part: which host holds the VIP, HTTP(S) probes, HAProxy's stats."""

import base64
import csv
import http.client
import io
import ssl

from ops.airflow_api import ssl_context


class LoadBalancerAccess:
    """Mixed into Lab, which provides cluster, secrets, data(name) and run(name, command)."""

    def lb_setting(self, key):
        """A load balancer setting (the lb hosts share them)."""
        return self.data(self.cluster.groups["lb"][0]).get(key)

    def vip_holders(self, names=None) -> list[str]:
        """The hosts (of `names`, default the lb hosts) that have the VIP on an interface."""
        vip = self.cluster.lb_vip
        return [name for name in names or self.cluster.groups["lb"]
                if vip in self.run(name, f"ip -o addr show to {vip}/32").stdout]

    def ssl_context(self) -> ssl.SSLContext:
        """Verifies the load balancer's certificate: the cluster's CA, or the system's when
        the certificate is publicly trusted."""
        return ssl_context(self.cluster.tls.ca_path)

    def http_get(self, address, port, path="/", headers=None, timeout=10, tls=False):
        """(status, headers, body) of a GET: plain HTTP, or with `tls` over HTTPS verified
        with the cluster's CA."""
        if tls:
            conn = http.client.HTTPSConnection(address, port, timeout=timeout,
                                               context=self.ssl_context())
        else:
            conn = http.client.HTTPConnection(address, port, timeout=timeout)
        try:
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def https_get(self, address, path="/", timeout=10):
        """(status, peer certificate DER, body) over HTTPS to the load balancer's port,
        verifying with the cluster's CA."""
        conn = http.client.HTTPSConnection(
            address, self.lb_setting("lb_https_port"), timeout=timeout, context=self.ssl_context()
        )
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            der = conn.sock.getpeercert(binary_form=True)
            return response.status, der, response.read()
        finally:
            conn.close()

    def stats_auth(self, password=None) -> dict[str, str]:
        """The Authorization header of HAProxy's stats page (default: the right password)."""
        user = self.lb_setting("lb_stats_user")
        password = self.secrets["stats_password"] if password is None else password
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    def stats_get(self, address, path="/", headers=None, timeout=10):
        """(status, headers, body) of a GET of the stats port of the lb host at `address`,
        which is served over HTTPS only."""
        return self.http_get(address, self.lb_setting("lb_stats_port"), path, headers=headers,
                             timeout=timeout, tls=True)

    def stats_csv(self, address) -> list[dict]:
        """HAProxy's stats on the lb host at `address` as rows (dicts)."""
        status, _, body = self.stats_get(address, "/;csv", headers=self.stats_auth())
        if status != 200:
            raise AssertionError(f"stats page of {address}: {status} {body[:300]!r}")
        return list(csv.DictReader(io.StringIO(body.decode().lstrip("# "))))

    def backend_status(self, address) -> dict[str, str]:
        """API server name -> its status (UP, DOWN, MAINT ...) in HAProxy at `address` (the
        checked entries: not the backups of panic mode)."""
        return {row["svname"]: row["status"] for row in self.stats_csv(address)
                if row["pxname"] == "api_servers" and row["svname"] not in ("FRONTEND", "BACKEND")
                and row.get("bck") != "1"}
