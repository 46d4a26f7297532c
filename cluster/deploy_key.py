"""The SSH deploy key the hosts read the DAG repository (dags_git_url) with: generated once on
the control machine into <secrets dir>/git/ (an Ed25519 key, OpenSSH format, 0600, with its
.pub to register as a read-only deploy key), or the user's own key file (dags_git_key)."""

from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from .errors import ClusterConfigError
from .private_files import locked, write_atomically

COMMENT = b"airflow-cluster DAG repository deploy key"


def ensure_deploy_key(key: Path, generate: bool) -> Path:
    """The private key file the hosts get. With `generate`, `key` (and `key`.pub) is made
    when missing and kept ever after; otherwise `key` is the user's and must be readable."""
    if generate:
        key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with locked(key.parent / ".lock"):
            if not key.is_file():
                _generate(key)
    _check_readable(key)
    return key


def public_key_line(key: Path) -> str:
    """The `ssh-ed25519 AAAA... comment` line of a generated key (its .pub file)."""
    return key.with_name(key.name + ".pub").read_text().strip()


def _generate(key: Path) -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,  # what ssh-keygen writes; git's ssh reads it
        serialization.NoEncryption(),  # read unattended by the DAG processors and workers
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    # Public half first: a crash in between leaves no private key without its .pub.
    write_atomically(key.with_name(key.name + ".pub"), public + b" " + COMMENT + b"\n", 0o644)
    write_atomically(key, pem, 0o600)


def _check_readable(key: Path) -> None:
    """ssh reads OpenSSH and PEM private keys; the hosts read it unattended: no passphrase."""
    try:
        data = key.read_bytes()
    except OSError as e:
        raise ClusterConfigError(f"dags_git_key {key}: {e.strerror}") from None
    for load in (serialization.load_ssh_private_key, serialization.load_pem_private_key):
        try:
            load(data, password=None)
            return
        except (ValueError, TypeError, UnsupportedAlgorithm):
            continue
    raise ClusterConfigError(
        f"dags_git_key {key}: not an unencrypted private key in OpenSSH or PEM format"
    )
