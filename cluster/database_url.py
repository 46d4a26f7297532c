"""Parse `external_database_url`: where Airflow's metadata database lives when the
inventory has no `postgres` group. The password never sits in the URL: it comes from
the secrets file, so the URL can live in git."""

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

SCHEMES = ("postgresql", "postgresql+psycopg2")
DEFAULT_PORT = 5432


@dataclass(frozen=True)
class DatabaseUrl:
    host: str
    port: int
    name: str
    user: str
    # Extra libpq parameters, e.g. "sslmode=require" ("" when none).
    query: str


def parse_database_url(url: Any) -> DatabaseUrl:
    """The parts of `url`; ValueError with the reason when it is malformed."""
    if not isinstance(url, str):
        raise ValueError(f"expected a string, got {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError(f"must start with {' or '.join(s + '://' for s in SCHEMES)}")
    if parts.password is not None:
        raise ValueError("must not contain a password (it comes from the secrets file)")
    if not parts.hostname:
        raise ValueError("has no host")
    if not parts.username:
        raise ValueError("has no user (postgresql://USER@HOST/DATABASE)")
    name = unquote(parts.path.lstrip("/"))
    if not name or "/" in name:
        raise ValueError("has no database name (postgresql://USER@HOST/DATABASE)")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ValueError("has an invalid port") from None
    return DatabaseUrl(parts.hostname, port, name, unquote(parts.username), parts.query)


def database_url(value: Any) -> str | None:
    """Settings check: None or a well-formed URL."""
    if value is None:
        return None
    try:
        parse_database_url(value)
    except ValueError as e:
        return str(e)  # not the URL itself: it might hold a password
    return None
