"""Debian packages, the way every role installs them."""

from pyinfra import host
from pyinfra.facts.deb import DebPackages
from pyinfra.operations import apt


def debian_packages(name, packages):
    """`packages` installed, without recommends. apt's index is refreshed only when one of
    them is missing: a converged host changes nothing (update=True would refresh every run)."""
    installed = host.get_fact(DebPackages)
    apt.packages(
        name=name,
        packages=list(packages),
        update=any(package not in installed for package in packages),
        no_recommends=True,
    )
