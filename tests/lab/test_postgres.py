"""PostgreSQL on the postgres host, as deployed: the service, its addresses and files, the
Airflow role from a web host with its password, the workers' Celery results role from a worker
host and to Celery's result tables only, and nobody else."""

import contextlib
import socket
import subprocess
import time
import uuid

import pg8000.native
import pytest

from cluster.passwords import scram_verifier_matches
from tests.lab.support import LAB, POSTGRES, listening, owner_and_mode

DATABASE = LAB.cluster.database


@pytest.fixture(scope="module")
def db(data_tier):
    """The postgres host."""
    if not LAB.cluster.groups["postgres"]:
        pytest.skip("the inventory has no postgres group (external database)")
    return LAB.cluster.groups["postgres"][0]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def tunnel_from(name, target, port):
    """A local port whose connections reach `target:port` from host `name` (ssh -L): the
    database sees them coming from that host's address."""
    local = _free_port()
    process = subprocess.Popen(
        LAB.ssh_argv(
            # A connection of its own: a forward through the shared one would outlive it.
            name, "-N", "-o", "ControlPath=none", "-o", "ExitOnForwardFailure=yes",
            "-L", f"127.0.0.1:{local}:{target}:{port}",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read().decode()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", local), 1):
                break
            assert time.monotonic() < deadline, f"no tunnel through {name}"
            time.sleep(0.2)
        yield local
    finally:
        process.terminate()
        process.wait(30)


def connect(host, port, password=None, user=None):
    """As the metadata role (or `user`, with `password`)."""
    return pg8000.native.Connection(
        user=user or DATABASE.user,
        password=LAB.secrets["postgres_password"] if password is None else password,
        host=host,
        port=port,
        database=DATABASE.name,
        timeout=30,
        # The lab's PostgreSQL has no TLS; not even trying also keeps pg8000's channel-binding
        # check away from gevent's patched ssl module (pyinfra's CLI monkey-patches).
        ssl_context=False,
    )


def test_service_running_and_enabled(db):
    host = LAB.host(db)
    assert host.service(POSTGRES.service).is_running
    assert host.service("postgresql").is_enabled


def test_listening_on_the_cluster_address_only(db):
    assert listening(LAB.host(db), DATABASE.port) == {
        LAB.cluster.node(db).address
    }


def test_config_files_are_private(db):
    host = LAB.host(db)
    for path in (POSTGRES.hba_file, f"{POSTGRES.conf_d}/airflow-cluster.conf"):
        user, group, mode = owner_and_mode(host, path)
        assert (user, group) == ("postgres", "postgres"), path
        assert mode & ~0o640 == 0, f"{path} has mode {mode:o}"


def test_settings_in_force(db):
    host = LAB.host(db)

    def show(name):
        return host.check_output(f"su postgres -c \"psql -AtXq -c 'SHOW {name}'\"")

    assert int(show("max_connections")) == DATABASE.max_connections
    assert show("password_encryption") == "scram-sha-256"
    stored = host.check_output(
        "su postgres -c \"psql -AtXq -c \\\"SELECT rolpassword FROM pg_authid "
        f"WHERE rolname = '{DATABASE.user}'\\\"\""
    )
    assert scram_verifier_matches(LAB.secrets["postgres_password"], stored)


def test_airflow_role_connects_from_a_web_host(db):
    web = LAB.cluster.groups["web"][0]
    with tunnel_from(web, DATABASE.host, DATABASE.port) as port:
        conn = connect("127.0.0.1", port)
        try:
            [[user, address]] = conn.run("SELECT current_user, host(inet_client_addr())")
            assert user == DATABASE.user
            assert address == LAB.cluster.node(web).address
            # It owns its database: it can create the tables `airflow db migrate` creates.
            table = f"t_{uuid.uuid4().hex}"
            conn.run(f"CREATE TABLE {table} (id int)")
            conn.run(f"DROP TABLE {table}")
            assert conn.run("SHOW server_encoding") == [["UTF8"]]
        finally:
            conn.close()
        with pytest.raises(pg8000.native.DatabaseError, match="password authentication failed"):
            connect("127.0.0.1", port, password="not-the-password")


def test_hosts_outside_the_list_are_refused(db):
    # This machine (the lab bridge's address) is no cluster host at all.
    with pytest.raises(pg8000.native.DatabaseError, match="no pg_hba.conf entry"):
        connect(DATABASE.host, DATABASE.port)
    # (A cluster host that runs no Airflow process, a load balancer, does not even reach the
    # port: its firewall refuses it, test_firewall.py.)


def connect_as_celery(host, port):
    return connect(host, port, LAB.secrets["celery_db_password"], DATABASE.celery_user)


@pytest.fixture(scope="module")
def celery_tables(db, role_deploy):
    """The Airflow deploy made Celery's result tables and granted them to the workers' role."""
    role_deploy("web", "scheduler", "worker")
    return db


def test_metadata_role_is_refused_from_a_worker_host(db):
    worker = LAB.cluster.groups["worker"][0]
    with tunnel_from(worker, DATABASE.host, DATABASE.port) as port:
        with pytest.raises(pg8000.native.DatabaseError, match="no pg_hba.conf entry"):
            connect("127.0.0.1", port)


def test_celery_role_may_use_celerys_result_tables_only(celery_tables):
    worker, web = LAB.cluster.groups["worker"][0], LAB.cluster.groups["web"][0]
    task_id = f"lab-{uuid.uuid4()}"
    with tunnel_from(worker, DATABASE.host, DATABASE.port) as port:
        conn = connect_as_celery("127.0.0.1", port)
        try:
            # What Celery's database backend does: read, insert (its sequence), update.
            conn.run("INSERT INTO celery_taskmeta (id, task_id, status) "
                     "VALUES (nextval('task_id_sequence'), :t, 'PENDING')", t=task_id)
            conn.run("UPDATE celery_taskmeta SET status = 'SUCCESS' WHERE task_id = :t",
                     t=task_id)
            assert conn.run("SELECT status FROM celery_taskmeta WHERE task_id = :t",
                            t=task_id) == [["SUCCESS"]]
            for statement in ("SELECT count(*) FROM connection", "SELECT count(*) FROM ab_user",
                              "DELETE FROM celery_taskmeta", "CREATE TABLE lab_t (id int)"):
                with pytest.raises(pg8000.native.DatabaseError, match="permission denied"):
                    conn.run(statement)
        finally:
            conn.close()
    with tunnel_from(web, DATABASE.host, DATABASE.port) as port:
        # Only from the worker hosts.
        with pytest.raises(pg8000.native.DatabaseError, match="no pg_hba.conf entry"):
            connect_as_celery("127.0.0.1", port)
        # The test's row goes, with the owner's rights.
        owner = connect("127.0.0.1", port)
        try:
            owner.run("DELETE FROM celery_taskmeta WHERE task_id = :t", t=task_id)
        finally:
            owner.close()
