"""Cluster secrets: generated once on the control machine, kept in a private JSON file
outside git, reused on every run.

A user may supply any secret by writing it into the file beforehand; missing ones are
generated and added, supplied ones are kept. Every value is validated on load.
"""

import base64
import difflib
import json
import re
import secrets
import stat
from pathlib import Path

from .errors import SecretsError
from .paths import project_path
from .private_files import locked, write_atomically

# keepalived's VRRP PASS authentication uses at most 8 characters.
VRRP_PASSWORD_MAX = 8


def _fernet_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def _password() -> str:
    # 43 url-safe characters: no quoting needed in URLs (redis://, postgresql://) or configs.
    return secrets.token_urlsafe(32)


_GENERATORS = {
    "fernet_key": _fernet_key,  # [core] fernet_key: encrypts connections/variables in the DB
    "api_secret_key": _password,  # [api] secret_key: identical on every node
    "jwt_secret": _password,  # [api_auth] jwt_secret: identical on every node
    "redis_password": _password,  # Redis and Sentinel
    "postgres_password": _password,  # the Airflow database role (API servers, schedulers)
    "celery_db_password": _password,  # the workers' Celery results role
    "admin_password": _password,  # the Airflow admin user
    "stats_password": _password,  # HAProxy stats page
    "vrrp_password": lambda: secrets.token_urlsafe(6),  # 8 characters
}
SECRET_NAMES = tuple(_GENERATORS)

_FERNET_KEY = re.compile(r"^[A-Za-z0-9_-]{43}=$")
# Secrets the HAProxy (single-quoted) and keepalived (unquoted) configs carry: no quote,
# backslash, comment or brace characters.
_CONFIG_SAFE = re.compile(r"^[A-Za-z0-9._~+=/@%^*(),:;?-]+$")
_IN_LB_CONFIGS = ("stats_password", "vrrp_password")
_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f]")
# Shortest supplied value accepted: 32 characters for the signing keys (the generated ones have
# 43: 32 random bytes), 16 for passwords. VRRP's PASS authentication carries at most 8 (in clear on
# the wire: it only keeps a stray router out).
_MIN_LENGTH = {"api_secret_key": 32, "jwt_secret": 32, "vrrp_password": 6}
_MIN_PASSWORD = 16
# Airflow expands $NAME and a leading ~ in every value of airflow.cfg (expand_env_var): no
# escape exists, so these secrets, written there as they are, cannot hold them.
_IN_AIRFLOW_CFG = ("api_secret_key", "jwt_secret", "redis_password")
# redis.conf and sentinel.conf carry the password as a bare word, where a quote opens a
# quoted string (Redis would not start).
_IN_REDIS_CONFIGS = ("redis_password",)


def load_or_create(path, project_dir=None) -> dict[str, str]:
    """Every secret from the file at `path` (relative: from the project dir), generating
    and storing the missing ones. Creates the file (0600) and its dir (0700) if needed."""
    path = project_path(path, project_dir)
    # exist_ok: a concurrent run may create it first; an existing dir keeps its mode.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Two runs starting together must not each generate, and keep, different secrets.
    with locked(path.with_name(f".{path.name}.lock")):
        stored = _read(path) if path.exists() else {}
        missing = [name for name in SECRET_NAMES if name not in stored]
        if missing:
            stored.update({name: _GENERATORS[name]() for name in missing})
            _write(path, _ordered(stored))
    return _ordered(stored)


def load(path, project_dir=None) -> dict[str, str]:
    """Every secret from the file at `path`, without creating anything (read-only commands)."""
    path = project_path(path, project_dir)
    if not path.exists():
        raise SecretsError(f"secrets file {path} does not exist: the deploy creates it")
    stored = _read(path)
    missing = [name for name in SECRET_NAMES if name not in stored]
    if missing:
        raise SecretsError(
            f"secrets file {path} lacks {', '.join(missing)}: run the deploy to generate them"
        )
    return _ordered(stored)


def missing_secrets(path, project_dir=None) -> tuple[str, ...]:
    """The names the next deploy will generate; validates an existing file, creates nothing."""
    path = project_path(path, project_dir)
    stored = _read(path) if path.exists() else {}
    return tuple(name for name in SECRET_NAMES if name not in stored)


def _ordered(stored: dict[str, str]) -> dict[str, str]:
    return {name: stored[name] for name in SECRET_NAMES if name in stored}


def _read(path: Path) -> dict[str, str]:
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise SecretsError(f"secrets file {path} is not a regular file")
    if info.st_mode & 0o077:
        raise SecretsError(
            f"secrets file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}): run `chmod 600 {path}`"
        )
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise SecretsError(f"secrets file {path} is not valid JSON: {e}") from None
    if not isinstance(stored, dict):
        raise SecretsError(f"secrets file {path} must hold a JSON object of name -> value")
    for name, value in stored.items():
        problem = _problem(name, value)
        if problem:
            raise SecretsError(f"secrets file {path}: {problem}")
    return stored


def _problem(name: str, value) -> str | None:
    if name not in _GENERATORS:
        close = difflib.get_close_matches(name, SECRET_NAMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown secret {name!r}{hint}; known: {', '.join(SECRET_NAMES)}"
    if not isinstance(value, str):
        return f"{name!r} must be a string, got {type(value).__name__}"
    if not value:
        return f"{name!r} is empty"
    # A newline or space would break the config lines the secrets are rendered into.
    if _UNSAFE.search(value):
        return f"{name!r} contains whitespace or control characters"
    if name == "fernet_key":
        if not _FERNET_KEY.match(value):
            return "'fernet_key' is not a Fernet key (url-safe base64 of 32 bytes, 44 characters)"
        return None
    shortest = _MIN_LENGTH.get(name, _MIN_PASSWORD)
    if len(value) < shortest:
        return (f"{name!r} has {len(value)} characters: at least {shortest} are needed "
                "(or remove it from the file and the deploy generates one)")
    if name in _IN_AIRFLOW_CFG and ("$" in value or value.startswith("~")):
        return (f"{name!r} holds '$' or starts with '~': Airflow expands them in airflow.cfg "
                "(environment variables, home directory)")
    if name in _IN_REDIS_CONFIGS and re.search("['\"]", value):
        return f"{name!r} holds a quote, which redis.conf cannot carry in a password"
    if name in _IN_LB_CONFIGS and not _CONFIG_SAFE.match(value):
        return (
            f"secret {name!r} holds a character the HAProxy/keepalived configs cannot "
            "carry (quotes, backslash, #, !, braces): choose another in the secrets file"
        )
    if name == "vrrp_password" and len(value) > VRRP_PASSWORD_MAX:
        return (
            f"'vrrp_password' has {len(value)} characters: "
            f"VRRP authentication allows at most {VRRP_PASSWORD_MAX}"
        )
    return None


def _write(path: Path, stored: dict[str, str]) -> None:
    """Replace `path` atomically: a reader sees the old file or the new one, never half."""
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o600
    write_atomically(path, (json.dumps(stored, indent=2) + "\n").encode(), mode)
