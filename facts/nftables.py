"""nftables, as the host firewall (tasks/firewall.py) needs to know it."""

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
