"""The control machine's wheelhouse (cluster/wheelhouse.py): which wheels a host gets, checked
against the lock's hashes, bundled for upload; the lab proves the hosts install from it
(tests/lab/test_airflow.py). No test here reaches a package index."""

import hashlib
import json
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from cluster.airflow_lock import locked_pins
from cluster.errors import ClusterConfigError
from cluster.wheelhouse import Platform, bundle, unpack_commands, uv_binary, verified_wheels
from cluster.wheelhouse import missing_upload, wheels_for

FIXTURE = Path(__file__).parent / "fixtures" / "facts" / "python.SystemPython" / "debian12.json"
DEBIAN_12 = json.loads(FIXTURE.read_text())["fact"]


def debian(**markers) -> Platform:
    fact = json.loads(json.dumps(DEBIAN_12))
    fact["markers"].update(markers)
    return Platform.of("worker1", fact)


def wheel(folder: Path, filename: str, content: bytes = b"") -> tuple[Path, str]:
    """A wheel file (a zip; its content does not matter here) and its sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("payload", content or filename.encode())
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_debian_12_platform_key_and_tags():
    platform = debian()
    assert platform.key == "cp311-manylinux_2_36_x86_64"
    tags = platform.platform_tags()
    assert tags[0] == "manylinux_2_36_x86_64" and "manylinux_2_17_x86_64" in tags
    assert tags[-3:] == ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def test_arm_hosts_get_no_x86_only_aliases():
    tags = debian(platform_machine="aarch64").platform_tags()
    assert "manylinux2014_aarch64" in tags and not any("manylinux1" in t for t in tags)


def test_a_host_without_python3_or_glibc_is_refused():
    with pytest.raises(ClusterConfigError, match="worker9 has no python3"):
        Platform.of("worker9", None)
    with pytest.raises(ClusterConfigError, match="musl.*not glibc"):
        Platform.of("worker9", {**DEBIAN_12, "libc": ["musl", "1.2"]})


def test_markers_are_evaluated_for_the_host_not_the_control_machine(tmp_path):
    lock = tmp_path / "requirements-1.0.lock"
    lock.write_text('apache-airflow==1.0\nasync-timeout==5.0.1 ; python_full_version < "3.11.3"\n')
    pins = locked_pins(lock)
    assert [p.name for p in pins if p.applies(debian().markers)] == [
        "apache-airflow", "async-timeout"]
    newer = debian(python_full_version="3.11.7").markers
    assert [p.name for p in pins if p.applies(newer)] == ["apache-airflow"]


def test_cached_wheels_whose_hash_the_lock_accepts_are_used_without_a_download(tmp_path):
    platform = debian()
    folder = tmp_path / platform.key
    good, good_sha = wheel(folder, "demo_pkg-1.0-py3-none-any.whl")
    other, other_sha = wheel(folder, "Other.Pkg-2.0-cp311-cp311-manylinux_2_17_x86_64.whl")
    wheel(folder, "demo_pkg-0.9-py3-none-any.whl")  # another lock's version
    lock = tmp_path / "requirements-1.0.lock"
    lock.write_text(f"demo-pkg==1.0 --hash=sha256:{good_sha}\n"
                    f"other-pkg==2.0 \\\n    --hash=sha256:{'0' * 64} \\\n"
                    f"    --hash=sha256:{other_sha}\n")
    assert wheels_for(lock, platform, cache=tmp_path) == [good, other]


def test_a_cached_wheel_with_another_hash_is_not_the_locked_one(tmp_path):
    platform = debian()
    folder = tmp_path / platform.key
    path, sha = wheel(folder, "demo_pkg-1.0-py3-none-any.whl")
    lock = tmp_path / "requirements-1.0.lock"
    lock.write_text(f"demo-pkg==1.0 --hash=sha256:{sha}\n")
    pins = locked_pins(lock)
    assert verified_wheels(pins, folder) == {pins[0]: path}
    wheel(folder, "demo_pkg-1.0-py3-none-any.whl", b"tampered")
    assert verified_wheels(pins, folder) == {}


def test_a_wheel_that_cannot_be_downloaded_is_one_clear_error(tmp_path, monkeypatch):
    # pip with no index at all (nothing leaves this machine): the download must fail.
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    lock = tmp_path / "requirements-1.0.lock"
    lock.write_text(f"demo-pkg==1.0 --hash=sha256:{'1' * 64}\n")
    with pytest.raises(ClusterConfigError,
                       match=r"(?s)could not download the wheels of requirements-1.0.lock "
                             r"for cp311-manylinux_2_36_x86_64:.*demo-pkg"):
        wheels_for(lock, debian(), cache=tmp_path / "cache")


def test_uv_binary_comes_out_of_uv_s_wheel(tmp_path):
    platform = debian()
    folder = tmp_path / platform.key
    folder.mkdir()
    with zipfile.ZipFile(folder / "uv-9.9.9-py3-none-manylinux_2_17_x86_64.whl", "w") as archive:
        archive.writestr("uv-9.9.9.data/scripts/uv", b"#!/bin/sh\necho uv 9.9.9\n")
    binary = uv_binary("9.9.9", platform, cache=tmp_path)
    assert binary == folder / "uv-9.9.9" and binary.stat().st_mode & 0o777 == 0o755
    assert subprocess.run([binary], capture_output=True, text=True).stdout == "uv 9.9.9\n"


def test_bundle_is_made_once_per_set_and_unpacks_into_the_wheelhouse(tmp_path):
    folder = tmp_path / "cp311"
    a, _ = wheel(folder, "a-1.0-py3-none-any.whl")
    b, _ = wheel(folder, "b-1.0-py3-none-any.whl")
    first = bundle([b, a], folder)
    assert bundle([a, b], folder) == first
    assert bundle([a], folder) != first
    with tarfile.open(first) as tar:
        assert tar.getnames() == ["a-1.0-py3-none-any.whl", "b-1.0-py3-none-any.whl"]
    # The host's commands, run here against a scratch root.
    root = tmp_path / "host"
    (root / "wheelhouse").mkdir(parents=True)
    script = " && ".join(unpack_commands())
    script = script.replace("/var/cache/airflow-cluster", str(root))
    (root / "wheelhouse-upload.tar").write_bytes(first.read_bytes())
    subprocess.run(["sh", "-c", script], check=True)
    assert sorted(p.name for p in root.iterdir()) == ["wheelhouse"]
    assert sorted(p.name for p in (root / "wheelhouse").iterdir()) == [a.name, b.name]


def test_a_host_gets_only_the_wheels_it_lacks(tmp_path):
    platform = debian()
    folder = tmp_path / platform.key
    a, a_sha = wheel(folder, "a-1.0-py3-none-any.whl")
    b, b_sha = wheel(folder, "b-1.0-py3-none-any.whl")
    lock = tmp_path / "requirements-1.0.lock"
    lock.write_text(f"a==1.0 --hash=sha256:{a_sha}\nb==1.0 --hash=sha256:{b_sha}\n")
    count, upload = missing_upload(lock, platform, [f"/var/cache/x/{a.name}"], cache=tmp_path)
    with tarfile.open(upload) as tar:
        assert (count, tar.getnames()) == (2, [b.name])
    on_host = [f"/w/{a.name}", f"/w/{b.name}"]
    assert missing_upload(lock, platform, on_host, cache=tmp_path) == (2, None)


def test_hosts_preparing_at_once_download_uv_once(tmp_path, monkeypatch):
    """pyinfra prepares every host in a greenlet of its own: while one host's `pip download`
    runs, another host of the platform waits for it instead of downloading into the same
    folder (two pips there replace each other's files)."""
    import gevent

    import cluster.wheelhouse as wheelhouse

    downloads = []

    def pip_download(args, platform, folder, what):
        downloads.append(args)
        gevent.sleep(0.05)  # the real one yields while pip runs
        with zipfile.ZipFile(folder / "uv-9.9.9-py3-none-manylinux_2_17_x86_64.whl",
                             "w") as archive:
            archive.writestr("uv-9.9.9.data/scripts/uv", b"#!/bin/sh\n")

    monkeypatch.setattr(wheelhouse, "_pip_download", pip_download)
    platform = debian()
    hosts = [gevent.spawn(uv_binary, "9.9.9", platform, tmp_path) for _ in range(3)]
    gevent.joinall(hosts, raise_error=True)
    assert downloads == [["uv==9.9.9"]]
    assert {host.value for host in hosts} == {tmp_path / platform.key / "uv-9.9.9"}
