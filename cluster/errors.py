"""Errors raised on the control machine before any host is touched."""

from pyinfra.api.exceptions import PyinfraError


class ClusterConfigError(PyinfraError):
    """The inventory, group_data or secrets file describe an invalid cluster.

    A PyinfraError, so the pyinfra CLI prints the one-line message instead of a traceback.
    """


class SecretsError(ClusterConfigError):
    """The secrets file is missing, unsafe or holds a malformed value."""
