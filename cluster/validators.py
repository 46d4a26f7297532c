"""Small value checks for the settings schema.

A check is a callable `check(value) -> None | str`: None when the value is fine, else a
short phrase saying what was expected ("expected a port 1-65535, got 'abc'").
"""

import ipaddress
import re
from typing import Any
from collections.abc import Callable
from urllib.parse import urlsplit

Check = Callable[[Any], "str | None"]

_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_UNSAFE_TEXT = re.compile(r"[\s'\"\\\x00-\x1f\x7f]")
# git's scp-like syntax: [user@]host:path (no scheme).
_SCP_LIKE = re.compile(r"^([A-Za-z0-9._-]+@)?[A-Za-z0-9.-]+:.+$")


def _expected(what: str, value: Any) -> str:
    return f"expected {what}, got {value!r}"


def anything(value: Any) -> None:
    """Any value: pyinfra checks its own global arguments when it uses them."""
    return None


def text(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return _expected("a non-empty string", value)
    return None


def plain_text(value: Any) -> str | None:
    """A non-empty string with no whitespace, quote or backslash: it sits unquoted in configs
    and command lines."""
    if not isinstance(value, str) or not value or _UNSAFE_TEXT.search(value):
        return _expected("a non-empty string without spaces, quotes or backslashes", value)
    return None


def git_url(value: Any) -> str | None:
    """A URL git clones code from: ssh://, https://, file:// or scp-like user@host:path. Not
    http:// (code that runs on every host, fetched in clear), and no password in it (it would
    sit in configs and outputs: use an SSH key)."""
    if plain_text(value):
        return "expected a Git URL without spaces or quotes"
    parts = urlsplit(value)
    if parts.scheme in ("ssh", "git+ssh", "https", "file"):
        if parts.password is not None:
            return "expected a Git URL without a password (use an SSH URL and key)"
        return None
    if "://" not in value and _SCP_LIKE.match(value):
        return None
    return "expected a Git URL: ssh://..., user@host:path, https://... or file://..."


def secret_text(value: Any) -> str | None:
    """Like `text`, but never repeats the value in the message: it is a password."""
    if not isinstance(value, str) or not value:
        return f"expected a non-empty string, got a {type(value).__name__}"
    return None


def boolean(value: Any) -> str | None:
    if not isinstance(value, bool):
        return _expected("True or False", value)
    return None


def integer(minimum: int | None = None, maximum: int | None = None) -> Check:
    def check(value: Any) -> str | None:
        # bool is an int subclass; True is never meant as a number here.
        if isinstance(value, bool) or not isinstance(value, int):
            return _expected("an integer", value)
        if minimum is not None and value < minimum or maximum is not None and value > maximum:
            if maximum is None:
                return _expected(f"an integer >= {minimum}", value)
            if minimum is None:
                return _expected(f"an integer <= {maximum}", value)
            return _expected(f"an integer in {minimum}..{maximum}", value)
        return None

    return check


def number(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _expected("a number", value)
    return None


def port(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        return _expected("a port number 1-65535", value)
    return None


def ip_address(value: Any) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return _expected("an IP address", value)
    return None


def ipv4_network(value: Any) -> str | None:
    """An IPv4 address or network ("10.0.0.5", "10.0.0.0/24"); host bits may be set."""
    try:
        ipaddress.IPv4Network(value, strict=False)
    except (ValueError, TypeError):
        return _expected("an IPv4 address or network", value)
    return None


def absolute_path(value: Any) -> str | None:
    if not isinstance(value, str) or not value.startswith("/"):
        return _expected("an absolute path", value)
    return None


def system_name(value: Any) -> str | None:
    """A Unix user/group name (also a safe PostgreSQL role/database name)."""
    if not isinstance(value, str) or not _NAME.match(value):
        return _expected("a lowercase name like 'airflow'", value)
    return None


def url(*schemes: str) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return _expected(f"a {'/'.join(schemes)} URL", value)
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.hostname:
            return _expected(f"a {'/'.join(schemes)} URL with a host", value)
        return None

    return check


def one_of(*allowed: Any) -> Check:
    def check(value: Any) -> str | None:
        if value not in allowed:
            return _expected("one of " + ", ".join(repr(a) for a in allowed), value)
        return None

    return check


def optional(inner: Check) -> Check:
    """None (the feature is off) or a value `inner` accepts."""

    def check(value: Any) -> str | None:
        if value is None:
            return None
        problem = inner(value)
        return problem and problem.replace("expected ", "expected None or ", 1)

    return check


def list_of(item: Check) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, (list, tuple)):
            return _expected("a list", value)
        for index, element in enumerate(value):
            problem = item(element)
            if problem:
                return f"item {index}: {problem}"
        return None

    return check


def mapping(key: Check, val: Check) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, dict):
            return _expected("a dict", value)
        for k, v in value.items():
            problem = key(k) or val(v)
            if problem:
                return f"key {k!r}: {problem}"
        return None

    return check


def either(*checks: Check) -> Check:
    """A value any of `checks` accepts (reports the first check's complaint)."""

    def check(value: Any) -> str | None:
        problems = [c(value) for c in checks]
        return None if None in problems else problems[0]

    return check
