"""Secrets: generated once on the control machine, kept private, reused, user-suppliable."""

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from cluster.errors import ClusterConfigError
from cluster.secret_store import SECRET_NAMES, load, load_or_create, missing_secrets

REL = ".secrets/cluster.json"
REPO = Path(__file__).resolve().parents[2]


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def write(path, data, file_mode=0o600):
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_text(json.dumps(data))
    path.chmod(file_mode)


def test_generated_once_and_stable(tmp_path):
    first = load_or_create(REL, project_dir=tmp_path)
    path = tmp_path / REL
    before = (path.stat().st_ino, path.stat().st_mtime_ns, path.read_bytes())
    assert load_or_create(REL, project_dir=tmp_path) == first
    assert load(REL, project_dir=tmp_path) == first
    assert (path.stat().st_ino, path.stat().st_mtime_ns, path.read_bytes()) == before
    assert json.loads(path.read_text()) == first


def test_file_is_private(tmp_path):
    load_or_create(REL, project_dir=tmp_path)
    assert mode(tmp_path / REL) == 0o600
    assert mode(tmp_path / ".secrets") == 0o700
    # No temp file left behind; the lock file holds nothing.
    assert sorted(os.listdir(tmp_path / ".secrets")) == [".cluster.json.lock", "cluster.json"]
    assert (tmp_path / ".secrets" / ".cluster.json.lock").read_text() == ""


def test_generated_values(tmp_path):
    secrets = load_or_create(REL, project_dir=tmp_path)
    assert tuple(secrets) == SECRET_NAMES
    assert "vrrp_password" in SECRET_NAMES
    Fernet(secrets["fernet_key"])  # raises on a malformed key
    for name, value in secrets.items():
        assert value.replace("-", "").replace("_", "").replace("=", "").isalnum(), name
        if name != "vrrp_password":
            assert len(value) >= 40, name
    assert 1 <= len(secrets["vrrp_password"]) <= 8
    assert len(set(secrets.values())) == len(secrets)
    assert load_or_create(REL, project_dir=tmp_path / "other") != secrets


def test_relative_path_is_from_the_project_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    load_or_create(REL, project_dir=tmp_path / "project")
    assert (tmp_path / "project" / REL).is_file()
    assert not (tmp_path / REL).exists()


def test_supplied_values_are_kept_and_missing_ones_added(tmp_path):
    path = tmp_path / REL
    supplied = {"fernet_key": Fernet.generate_key().decode(), "admin_password": "correct-horse-battery"}
    write(path, supplied)
    assert missing_secrets(path) == tuple(n for n in SECRET_NAMES if n not in supplied)
    secrets = load_or_create(path)
    assert {k: secrets[k] for k in supplied} == supplied
    assert tuple(secrets) == SECRET_NAMES
    assert json.loads(path.read_text()) == secrets
    assert mode(path) == 0o600


def test_stricter_mode_is_kept(tmp_path):
    path = tmp_path / REL
    write(path, {"admin_password": "a-supplied-password"}, file_mode=0o400)
    load_or_create(path)
    assert mode(path) == 0o400


@pytest.mark.parametrize("supplied, fragment", [
    ({"fernet_key": "not-a-key"}, "'fernet_key' is not a Fernet key"),
    ({"fernet_key": "A" * 44}, "'fernet_key' is not a Fernet key"),
    ({"redis_password": ""}, "'redis_password' is empty"),
    ({"redis_password": 12345}, "'redis_password' must be a string"),
    ({"jwt_secret": None}, "'jwt_secret' must be a string"),
    ({"admin_password": "two words"}, "'admin_password' contains whitespace"),
    ({"vrrp_password": "123456789"}, "'vrrp_password' has 9 characters"),
    ({"vrrp_password": "12345"}, "'vrrp_password' has 5 characters: at least 6"),
    ({"jwt_secret": "a"}, "'jwt_secret' has 1 characters: at least 32"),
    ({"api_secret_key": "k" * 31}, "'api_secret_key' has 31 characters: at least 32"),
    ({"admin_password": "fifteen-chars!!"}, "'admin_password' has 15 characters: at least 16"),
    ({"postgres_password": "short"}, "'postgres_password' has 5 characters: at least 16"),
    ({"jwt_secret": "x" * 32 + "$HOME"}, "'jwt_secret' holds '$' or starts with '~'"),
    ({"api_secret_key": "~" + "k" * 32}, "'api_secret_key' holds '$' or starts with '~'"),
    ({"redis_password": "a" * 16 + "$PATH"}, "'redis_password' holds '$'"),
    ({"redis_password": "it's-a-long-password"}, "'redis_password' holds a quote"),
    ({"redis_password": 'say-"hello"-to-redis'}, "'redis_password' holds a quote"),
    ({"fernet": "x"}, "unknown secret 'fernet' (did you mean 'fernet_key'?)"),
])
def test_malformed_supplied_value_rejected(tmp_path, supplied, fragment):
    path = tmp_path / REL
    write(path, supplied)
    content = path.read_text()
    for call in (load_or_create, load, missing_secrets):
        with pytest.raises(ClusterConfigError) as raised:
            call(path)
        assert fragment in str(raised.value)
        assert str(path) in str(raised.value)
    assert path.read_text() == content  # nothing generated on top of a bad file


@pytest.mark.parametrize("content, fragment", [
    ("{not json", "is not valid JSON"),
    ('["fernet_key"]', "must hold a JSON object"),
])
def test_malformed_file_rejected(tmp_path, content, fragment):
    path = tmp_path / REL
    path.parent.mkdir()
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(ClusterConfigError, match=fragment):
        load_or_create(path)


@pytest.mark.parametrize("file_mode", [0o640, 0o604, 0o660, 0o644])
def test_readable_by_others_refused_and_not_changed(tmp_path, file_mode):
    path = tmp_path / REL
    write(path, {}, file_mode=file_mode)
    with pytest.raises(ClusterConfigError, match=r"accessible by group or others.*chmod 600"):
        load_or_create(path)
    assert mode(path) == file_mode


def test_load_creates_nothing(tmp_path):
    with pytest.raises(ClusterConfigError, match="does not exist"):
        load(REL, project_dir=tmp_path)
    assert not (tmp_path / ".secrets").exists()
    write(tmp_path / REL, {"admin_password": "a-supplied-password"})
    with pytest.raises(ClusterConfigError, match="lacks fernet_key"):
        load(REL, project_dir=tmp_path)


def test_concurrent_first_runs_agree(tmp_path):
    # Separate processes, as two deploys started together would be, released at the same
    # instant so their read-generate-write sections overlap.
    path, go = tmp_path / REL, tmp_path / "go"
    code = """if True:
        import json, os, sys, time
        from cluster.secret_store import load_or_create
        open(sys.argv[2] + "." + str(os.getpid()), "w").close()  # ready
        while not os.path.exists(sys.argv[2]):
            time.sleep(0.002)
        print(json.dumps(load_or_create(sys.argv[1])))
    """
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runs = [subprocess.Popen([sys.executable, "-c", code, str(path), str(go)], env=env,
                             text=True, stdout=subprocess.PIPE) for _ in range(4)]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("go.*"))) < len(runs) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    results = [json.loads(run.communicate(timeout=60)[0]) for run in runs]
    assert all(run.returncode == 0 for run in runs)
    assert all(r == results[0] for r in results)
    assert load(path) == results[0]


def test_repeated_and_parallel_calls_under_gevent(tmp_path):
    # The pyinfra CLI monkey-patches gevent in and loads deploy.py once per host in parallel
    # greenlets of one process; gevent defers os.close of a directory fd, so a lock released
    # by closing outlived its call and the next call hung. Time-boxed: a hang fails the test.
    code = """if True:
        import sys
        import gevent, pyinfra_cli  # pyinfra_cli applies gevent's monkey-patching
        from gevent.pool import Pool
        from cluster.secret_store import load_or_create
        gevent.get_hub()
        path = sys.argv[1]
        first = load_or_create(path)
        assert load_or_create(path) == first
        results = Pool(10).map(lambda _: load_or_create(path + ".2"), range(10))
        assert all(r == results[0] for r in results)
        print("ok")
    """
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / REL)], env=env,
                         capture_output=True, text=True, timeout=30)
    assert run.stdout.strip() == "ok", run.stderr
