"""Where the lab keeps its state, in one place."""

import os
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabError

DEFAULT_LAB_DIR = "/var/lib/airflow-lab"
PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_INVENTORY = PROJECT_DIR / "inventory.py"
BRIDGE = "alab0"
PROXY_PORT = 3128
# The Debian release the lab's hosts run (env LAB_DISTRO): the CI's is bookworm.
DEFAULT_SUITE = "bookworm"
SUITES = ("bookworm", "trixie")


def lab_suite() -> str:
    """The Debian suite of env LAB_DISTRO (bookworm when unset)."""
    suite = os.environ.get("LAB_DISTRO") or DEFAULT_SUITE
    if suite not in SUITES:
        raise LabError(f"LAB_DISTRO={suite!r}: the lab boots {' or '.join(SUITES)}")
    return suite


@dataclass(frozen=True)
class LabPaths:
    root: Path
    suite: str = DEFAULT_SUITE

    @classmethod
    def from_env(cls) -> "LabPaths":
        # Read at call time, not import time, so tests can point LAB_DIR elsewhere.
        return cls(Path(os.environ.get("LAB_DIR", DEFAULT_LAB_DIR)), lab_suite())

    @property
    def base(self) -> Path:
        return self.root / f"base-{self.suite}"

    @property
    def base_partial(self) -> Path:
        return self.root / f".base-{self.suite}.partial"

    @property
    def hosts_suite(self) -> Path:
        """The suite the hosts' disks (upper dirs) were made from."""
        return self.root / "hosts-suite"

    @property
    def debootstrap_log(self) -> Path:
        return self.root / "debootstrap.log"

    @property
    def ssh_key(self) -> Path:
        return self.root / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def proxy_pid(self) -> Path:
        return self.root / "proxy.pid"

    @property
    def proxy_log(self) -> Path:
        return self.root / "proxy.log"

    @property
    def proxy_config(self) -> Path:
        return self.root / "tinyproxy.conf"

    @property
    def proxy_filter(self) -> Path:
        return self.root / "tinyproxy.filter"

    @property
    def hosts_dir(self) -> Path:
        return self.root / "hosts"

    def host_dir(self, name: str) -> Path:
        return self.hosts_dir / name

    def upper(self, name: str) -> Path:
        return self.host_dir(name) / "upper"

    def console_log(self, name: str) -> Path:
        return self.host_dir(name) / "console.log"

    def nspawn_pid(self, name: str) -> Path:
        return self.host_dir(name) / "nspawn.pid"

    def host_key(self, name: str) -> Path:
        # Kept outside the upper dir so a host keeps its identity across boots.
        return self.host_dir(name) / "ssh_host_ed25519_key"
