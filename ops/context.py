"""What every ops command shares: the project dir and how to load the cluster model."""

from dataclasses import dataclass
from pathlib import Path

from pyinfra.api.inventory import Inventory

from cluster.model import Cluster, build_cluster, load_inventory


@dataclass(frozen=True)
class OpsContext:
    # The directory holding deploy.py and group_data/ (secrets_file is relative to it).
    project_dir: Path

    def inventory_path(self, given: Path | None) -> Path:
        """The inventory a command works on: the argument (relative to the current
        directory, like any CLI path) or the project's inventory.py."""
        if given is None:
            return self.project_dir / "inventory.py"
        return Path.cwd() / given

    def load(self, given: Path | None) -> tuple[Inventory, Cluster]:
        """The inventory and its validated model, offline (ClusterConfigError if invalid)."""
        inventory = load_inventory(self.inventory_path(given), project_dir=self.project_dir)
        return inventory, build_cluster(inventory, self.project_dir)
