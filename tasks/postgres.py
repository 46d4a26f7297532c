"""PostgreSQL from the distro on the `postgres` host: Airflow's metadata database.

Debian's package creates and starts the `15/main` cluster; the deploy adds its settings in
`conf.d/` (read after postgresql.conf), owns `pg_hba.conf`, and creates the Airflow role and
database, and the workers' Celery results role (cluster/database.py). Each role's password is
set as a SCRAM-SHA-256 verifier computed on the control machine (the password never reaches
the host), and only when the stored verifier does not match the secrets file: a converged run
changes nothing.
"""

from pyinfra.api import deploy
from pyinfra.operations import postgres, systemd

from operations import files as cluster_files
from operations import postgres as postgres_passwords
from tasks.context import template_vars
from tasks.packages import POSTGRES_VERSION

# Debian 12's PostgreSQL.
VERSION = POSTGRES_VERSION  # its package: tasks/packages.py
CONFIG_DIR = f"/etc/postgresql/{VERSION}/main"
TEMPLATES = f"templates/etc/postgresql/{VERSION}/main"
# The cluster's own unit (postgresql.service only starts and stops every cluster).
SERVICE = f"postgresql@{VERSION}-main"
AS_POSTGRES = {"_su_user": "postgres"}


@deploy("PostgreSQL")
def apply(run):
    tvars = template_vars(run)
    database = run.cluster.database
    settings_file = cluster_files.template(
        name="PostgreSQL settings (listen address, port, max_connections)",
        src=f"{TEMPLATES}/conf.d/airflow-cluster.conf.j2",
        dest=f"{CONFIG_DIR}/conf.d/airflow-cluster.conf",
        user="postgres",
        group="postgres",
        mode="0640",
        **tvars,
    )
    hba = cluster_files.template(
        name="pg_hba.conf: the cluster's Airflow hosts only",
        src=f"{TEMPLATES}/pg_hba.conf.j2",
        dest=f"{CONFIG_DIR}/pg_hba.conf",
        user="postgres",
        group="postgres",
        mode="0640",
        **tvars,
    )
    systemd.service(name="postgresql enabled", service="postgresql", enabled=True)
    systemd.service(name=f"{SERVICE} running", service=SERVICE)
    # listen_addresses, port and max_connections only change at a restart; pg_hba.conf at a reload.
    systemd.service(
        name=f"{SERVICE} restarted (its settings changed)",
        service=SERVICE,
        restarted=True,
        _if=settings_file.did_change,
    )
    systemd.service(
        name=f"{SERVICE} reloaded (pg_hba.conf changed)",
        service=SERVICE,
        reloaded=True,
        _if=lambda: hba.did_change() and not settings_file.did_change(),
    )

    _login_role(database.user, run.secrets["postgres_password"])
    # The workers' role: the Airflow hosts' database helper grants it Celery's result tables
    # once they exist (tasks/airflow.py); it owns nothing and may create nothing.
    _login_role(database.celery_user, run.secrets["celery_db_password"])
    postgres.database(
        name=f"database {database.name} owned by {database.user}",
        database=database.name,
        owner=database.user,
        encoding="UTF8",
        template="template0",
        lc_collate="C.UTF-8",
        lc_ctype="C.UTF-8",
        **AS_POSTGRES,
    )


def _login_role(role, password):
    """`role` may log in, with `password` (its SCRAM verifier set only when the stored one was
    not made from it, off every command line: operations/postgres.py)."""
    postgres.role(name=f"role {role} may log in", role=role, login=True, **AS_POSTGRES)
    postgres_passwords.role_password(name=f"role {role} with the secrets file's password",
                                     role=role, password=password)
