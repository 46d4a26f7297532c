"""PostgreSQL from the distro on the `postgres` host: Airflow's metadata database.

The release's PostgreSQL (cluster/systems.py: 15 on Debian 12, 17 on Debian 13, 16 on Ubuntu
24.04 and the RHEL family's AppStream). Debian's package creates and starts the `VERSION/main`
cluster; on the RHEL family `postgresql-setup --initdb` makes it in /var/lib/pgsql/data, and
the deploy adds `include_dir = 'conf.d'` to its postgresql.conf. The deploy adds its settings
in `conf.d/` (read after postgresql.conf), owns `pg_hba.conf`, and creates the Airflow role and
database, and the workers' Celery results role (cluster/database.py). Each role's password is
set as a SCRAM-SHA-256 verifier computed on the control machine (the password never reaches
the host), and only when the stored verifier does not match the secrets file: a converged run
changes nothing.
"""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File
from pyinfra.operations import files, postgres, server, systemd

from cluster.systems import postgres_layout
from operations import files as cluster_files
from operations import postgres as postgres_passwords
from tasks.context import template_vars

# The same templates for every release (VERSION: the release's version, cluster/systems.py).
TEMPLATES = "templates/etc/postgresql/VERSION/main"
AS_POSTGRES = {"_su_user": "postgres"}


@deploy("PostgreSQL")
def apply(run):
    tvars = template_vars(run)
    database = run.cluster.database
    layout = postgres_layout(tvars["release"])
    if layout.initdb:
        _initdb(layout)
    service = layout.service
    settings_file = cluster_files.template(
        name="PostgreSQL settings (listen address, port, max_connections)",
        src=f"{TEMPLATES}/conf.d/airflow-cluster.conf.j2",
        dest=f"{layout.conf_d}/airflow-cluster.conf",
        user="postgres",
        group="postgres",
        mode="0640",
        **tvars,
    )
    hba = cluster_files.template(
        name="pg_hba.conf: the cluster's Airflow hosts only",
        src=f"{TEMPLATES}/pg_hba.conf.j2",
        dest=layout.hba_file,
        user="postgres",
        group="postgres",
        mode="0640",
        **tvars,
    )
    systemd.service(name=f"{layout.boot_service} enabled", service=layout.boot_service,
                    enabled=True)
    systemd.service(name=f"{service} running", service=service)
    # listen_addresses, port and max_connections only change at a restart; pg_hba.conf at a reload.
    systemd.service(
        name=f"{service} restarted (its settings changed)",
        service=service,
        restarted=True,
        _if=settings_file.did_change,
    )
    systemd.service(
        name=f"{service} reloaded (pg_hba.conf changed)",
        service=service,
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


def _initdb(layout):
    """RHEL family: the cluster made once (the package makes none), and its postgresql.conf
    reading the deploy's conf.d, as Debian's does."""
    if not host.get_fact(File, path=f"{layout.data_dir}/PG_VERSION"):
        server.shell(name="PostgreSQL cluster created (postgresql-setup --initdb)",
                     commands=[layout.initdb])
    files.directory(name=f"directory {layout.conf_d}", path=layout.conf_d, user="postgres",
                    group="postgres", mode="0700")
    files.line(name="postgresql.conf reads conf.d", path=f"{layout.data_dir}/postgresql.conf",
               line="^include_dir = 'conf.d'$", replace="include_dir = 'conf.d'")


def _login_role(role, password):
    """`role` may log in, with `password` (its SCRAM verifier set only when the stored one was
    not made from it, off every command line: operations/postgres.py)."""
    postgres.role(name=f"role {role} may log in", role=role, login=True, **AS_POSTGRES)
    postgres_passwords.role_password(name=f"role {role} with the secrets file's password",
                                     role=role, password=password)
