"""SELinux on a host (RHEL family): whether it is in force at all."""

from pyinfra.api import FactBase


class SelinuxMode(FactBase):
    """"Enforcing", "Permissive" or "Disabled" (also a host without SELinux's tools)."""

    def command(self):
        return "if command -v getenforce >/dev/null; then getenforce; else echo Disabled; fi"

    def process(self, output):
        return "\n".join(output).strip() or "Disabled"
