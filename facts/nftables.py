"""nftables and the firewall services that may compete with it, as the host firewall
(tasks/firewall.py) needs to know them."""

from pyinfra.api import FactBase, StringCommand


class NftTable(FactBase):
    """Whether the nftables table `family` `table` exists (False without nft)."""

    def requires_command(self, family, table):
        return "nft"

    def command(self, family, table):
        return StringCommand("if", "nft", "list", "table", family, table, ">/dev/null", "2>&1;",
                             "then", "echo", "yes;", "else", "echo", "no;", "fi")

    def process(self, output):
        return output == ["yes"]

    @staticmethod
    def default():
        return False


class UnitLoadState(FactBase):
    """How systemd knows `unit`: {"load": "loaded" | "masked" | "not-found", "active":
    "active" | "inactive" | ...} (a firewall service that may compete with the deploy's)."""

    def command(self, unit):
        return StringCommand("systemctl", "show", "--property=LoadState,ActiveState", unit)

    def process(self, output):
        values = dict(line.split("=", 1) for line in output if "=" in line)
        return {"load": values.get("LoadState", "not-found"),
                "active": values.get("ActiveState", "inactive")}

    @staticmethod
    def default():
        return {"load": "not-found", "active": "inactive"}
