"""One module per role, each a pyinfra `@deploy` taking the prepared run (cluster/run.py):
install -> configure -> service.

Every template under templates/ is rendered with the same names, so a unit test can render
them all offline: `cluster` (the validated model), `node` (this host in the model),
`settings` (this host's data: group_data merged with inventory host data), `secrets` and
`connections` (the URLs carrying secrets), `release`, `packaging` and `redis` (the host's
operating system, its family's packaging and Redis layout, cluster/systems.py). Templates
only print these values.
"""
