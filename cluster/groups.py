"""The inventory groups that decide what runs where (docs/architecture.md)."""

ROLE_GROUPS = ("redis", "postgres", "web", "scheduler", "worker", "lb")
# A cluster needs hosts in each of these (postgres is optional: external_database_url).
REQUIRED_GROUPS = ("redis", "web", "scheduler", "worker", "lb")
# Groups whose hosts run Airflow (and connect to its metadata database).
AIRFLOW_GROUPS = ("web", "scheduler", "worker")
