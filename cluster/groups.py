"""The inventory groups that decide what runs where (docs/architecture.md)."""

ROLE_GROUPS = ("redis", "postgres", "web", "scheduler", "worker", "lb")
# A cluster needs hosts in each of these (postgres is optional: external_database_url).
REQUIRED_GROUPS = ("redis", "web", "scheduler", "worker", "lb")
# Groups whose hosts run Airflow.
AIRFLOW_GROUPS = ("web", "scheduler", "worker")
# Airflow hosts that hold the cluster's secrets (fernet key, JWT secret, API secret key, the
# metadata database's password) and use the metadata database. Worker hosts hold none of them:
# task code runs there (docs/architecture.md, "Who holds which secret").
CONTROL_PLANE_GROUPS = ("web", "scheduler")
