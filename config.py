"""pyinfra configuration, read by the CLI before it connects to any host."""

from pyinfra import config

# Any host that cannot be reached (or fails) stops the whole deploy: a cluster half
# configured is worse than one untouched, and the error names the host.
config.FAIL_PERCENT = 0
