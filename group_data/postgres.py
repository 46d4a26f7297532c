"""Settings of the optional `postgres` group: PostgreSQL, Airflow's metadata database.

The port, database and role names are in group_data/all.py (`postgres_port`,
`postgres_database`, `postgres_user`); the role's password is in the secrets file.
"""

# Connections each Airflow process may hold open (its SQLAlchemy pool_size + max_overflow).
# max_connections = the sum over the inventory (an API server per web host; a scheduler, DAG
# processor and triggerer per scheduler host; a Celery worker per worker host) + the reserve.
postgres_connection_budget = {
    "api_server": 60,  # 4 uvicorn workers x (pool 5 + overflow 10)
    "scheduler": 20,  # pool 5 + overflow 10, and the Celery executor's result-backend reads
    "dag_processor": 15,  # pool 5 + overflow 10
    "triggerer": 15,  # pool 5 + overflow 10
    "worker": 20,  # Celery's database result backend: one per pool process
}
# Connections added on top, for psql sessions, `airflow db migrate` and monitoring.
postgres_reserved_connections = 20
