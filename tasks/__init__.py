"""One module per role, each a pyinfra `@deploy`: install -> configure -> service.

Every template under templates/ is rendered with the same four names, so a unit test can
render them all offline: `cluster` (the validated model), `node` (this host in the model),
`settings` (this host's data: group_data merged with inventory host data) and `secrets`.
"""
