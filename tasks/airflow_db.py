"""The metadata database as the deploy sees it: a fact asking one Airflow host whether
migrations are pending and what the admin user's password hash is, and the werkzeug password
hashes FAB stores (made and checked here, so the admin password never reaches a host).

The fact runs the helper `airflow-cluster-db status` (templates/usr/local/sbin/), which
never fails: before Airflow is installed or while the database is unreachable it answers
{"db": "unknown"}, and the deploy then migrates and sets the admin password.
"""

import hashlib
import hmac
import json
import secrets as _random
import string

from pyinfra.api import FactBase, QuoteString, StringCommand

HELPER = "/usr/local/sbin/airflow-cluster-db"
STATUS_MARKER = "AIRFLOW-CLUSTER-DB-STATUS "
UNKNOWN = {"db": "unknown", "conn_sha256": None, "admin_password_hash": None}


class AirflowDbStatus(FactBase):
    """{"db": "current" | "needed" | "unknown", "conn_sha256": sha256 of the configured
    sql_alchemy_conn or None, "admin_password_hash": the stored hash or None}."""

    def command(self, python, admin_user):
        # The helper runs under the venv's python: absent before the first install.
        return StringCommand(
            "if", "[", "-x", QuoteString(python), "]", "&&", "[", "-x", HELPER, "];",
            "then", HELPER, "status", QuoteString(admin_user), "2>/dev/null", "||", "true;", "fi",
        )

    def process(self, output):
        for line in reversed(output):
            if line.startswith(STATUS_MARKER):
                return {**UNKNOWN, **json.loads(line[len(STATUS_MARKER):])}
        return dict(UNKNOWN)

    @staticmethod
    def default():
        return dict(UNKNOWN)


def conn_sha256(sql_alchemy_conn: str) -> str:
    """What the status fact reports for a configured database URL."""
    return hashlib.sha256(sql_alchemy_conn.encode()).hexdigest()


# --- werkzeug password hashes (what FAB stores in ab_user.password) -------------------------

_SALT_CHARS = string.ascii_letters + string.digits


def _derive(method: str, salt: str, password: str) -> str:
    name, *args = method.split(":")
    if name == "scrypt":
        n, r, p = (int(a) for a in args) if args else (2**15, 8, 1)
        return hashlib.scrypt(
            password.encode(), salt=salt.encode(), n=n, r=r, p=p, maxmem=132 * n * r * p
        ).hex()
    if name == "pbkdf2":
        hash_name = args[0] if args else "sha256"
        iterations = int(args[1]) if len(args) > 1 else 1_000_000
        return hashlib.pbkdf2_hmac(hash_name, password.encode(), salt.encode(), iterations).hex()
    raise ValueError(f"unsupported password hash method {name!r}")


def make_password_hash(password: str) -> str:
    """A werkzeug `scrypt:32768:8:1$<salt>$<hex>` hash, as FAB's generate_password_hash makes."""
    salt = "".join(_random.choice(_SALT_CHARS) for _ in range(16))
    return f"scrypt:32768:8:1${salt}${_derive('scrypt:32768:8:1', salt, password)}"


def password_hash_matches(password: str, stored: str | None) -> bool:
    """Whether `stored` (werkzeug format, scrypt or pbkdf2) was made from `password`."""
    if not stored or stored.count("$") != 2:
        return False
    method, salt, digest = stored.split("$")
    try:
        expected = _derive(method, salt, password)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(expected, digest)
