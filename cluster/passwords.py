"""Password hashes made on the control machine, so a password itself never reaches a host:
the SCRAM-SHA-256 verifier PostgreSQL stores for a role, and the werkzeug hash FAB stores
for the Airflow admin user. Each comes with the check that a stored hash was made from a
password, so a converged run sets nothing again.
"""

import base64
import hashlib
import hmac
import re
import secrets as _random
import string

# --- PostgreSQL SCRAM verifiers -------------------------------------------------------------

# SCRAM-SHA-256 verifiers as PostgreSQL stores them (RFC 5802/7677; src/common/scram-common.c):
# SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey b64>:<ServerKey b64>
SCRAM_ITERATIONS = 4096
_SCRAM = re.compile(r"^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$")


def _scram_keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return stored_key, server_key


def scram_verifier(password: str, salt: bytes | None = None, iterations=SCRAM_ITERATIONS) -> str:
    """The verifier PostgreSQL would store for `password`: sent instead of the password, so
    the password itself never reaches the database host (and its logs)."""
    salt = _random.token_bytes(16) if salt is None else salt
    stored_key, server_key = _scram_keys(password, salt, iterations)

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def scram_verifier_matches(password: str, verifier: str | None) -> bool:
    """Whether `verifier` (pg_authid.rolpassword) was made from `password`.

    Passwords are taken as UTF-8 without SASLprep, which is exact for the generated ones
    (ASCII); a supplied non-ASCII password may be re-set on every run.
    """
    match = _SCRAM.match(verifier or "")
    if not match:
        return False
    iterations, salt, stored_key, server_key = match.groups()
    expected = _scram_keys(password, base64.b64decode(salt), int(iterations))
    actual = (base64.b64decode(stored_key), base64.b64decode(server_key))
    return all(hmac.compare_digest(a, b) for a, b in zip(expected, actual))


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
