"""The deploy's own pyinfra facts, one module per concern, laid out like `pyinfra.facts`.

A fact here only asks (its `command`) and parses (its pure `process`); what to do about
the answer is decided by the operations (operations/) and the roles (tasks/). pyinfra names
each fact `<module>.<Class>` (e.g. `redis.RedisClusterView`); its fixture tests live in
tests/unit/fixtures/facts/<module>.<Class>/*.json (tests/unit/test_fixtures.py).
"""
