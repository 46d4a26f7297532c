"""The deploy's own pyinfra operations, one module per concern, laid out like
`pyinfra.operations`.

Each is an `@operation()` generator: it reads facts (facts/ or pyinfra's), yields the
commands that bring the host in line, or calls `host.noop(...)` when there is nothing to do.
The roles (tasks/) call them like pyinfra's own; their fixture tests (facts in, commands
out) live in tests/unit/fixtures/operations/<module>.<operation>/*.json
(tests/unit/test_fixtures.py).
"""
