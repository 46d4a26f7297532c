"""pyinfra configuration, read by the CLI before it connects to any host."""

# Any host that cannot be reached (or fails) stops the whole deploy: a cluster half
# configured is worse than one untouched, and the error names the host.
FAIL_PERCENT = 0
