import io
import tarfile

import numpy as np
import pytest

from datagen.errors import ShardReadError
from datagen.store.shards import commit_tar, read_tar, sweep_temp_files, tar_bytes, tmp_path_for


def test_tar_bytes_depend_only_on_members():
    members = [("000000_000001.json", b"{}"), ("000000_000001.png", b"\x89PNG")]
    assert tar_bytes(members) == tar_bytes(list(members))
    with tarfile.open(fileobj=io.BytesIO(tar_bytes(members))) as t:
        infos = t.getmembers()
    assert [i.name for i in infos] == [m[0] for m in members]
    assert all(i.mtime == 0 and i.uid == 0 and i.uname == "" and i.mode == 0o644 for i in infos)


def test_commit_is_atomic_and_leaves_no_temp(tmp_path):
    path = tmp_path / "stages" / "t2i" / "shard-000000.tar"
    sha, size = commit_tar(path, [("000000_000000.json", b"{}")])
    assert path.stat().st_size == size and len(sha) == 64
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert read_tar(path) == {"000000_000000": {"json": b"{}"}}


def test_sweep_removes_only_temp_files(tmp_path):
    keep = tmp_path / "final" / "shard-000000.tar"
    keep.parent.mkdir()
    keep.write_bytes(b"x")
    stray = tmp_path_for(keep)
    stray.write_bytes(b"half")
    assert sweep_temp_files(tmp_path) == 1
    assert keep.exists() and not stray.exists()


@pytest.mark.parametrize(
    "name",
    ["../evil.json", "/abs/000000_000000.json", "000000_000000/../../x.json", "sub/000000_000000.json", "000000_000000"],
)
def test_unsafe_member_names_are_refused(tmp_path, name):
    path = tmp_path / "bad.tar"
    path.write_bytes(tar_bytes([(name, b"{}")]))
    with pytest.raises(ShardReadError, match="unsafe or unexpected member"):
        read_tar(path)


def test_links_are_refused(tmp_path):
    path = tmp_path / "link.tar"
    with tarfile.open(path, "w") as t:
        info = tarfile.TarInfo("000000_000000.json")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        t.addfile(info)
    with pytest.raises(ShardReadError):
        read_tar(path)


def test_truncated_shard_is_an_error_not_a_crash(tmp_path):
    path = tmp_path / "t.tar"
    data = tar_bytes([("000000_000000.depth.npy", np.zeros(5000, np.float32).tobytes())])
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ShardReadError):
        read_tar(path)


def test_member_filter_skips_bytes_but_not_checks(tmp_path, monkeypatch):
    path = tmp_path / "f.tar"
    depth = np.zeros(5000, np.float32).tobytes()
    path.write_bytes(tar_bytes([("000000_000000.json", b"{}"), ("000000_000000.depth.npy", depth),
                                ("000000_000001.depth.npy", depth), ("000000_000002.json", b"[]")]))
    opened = []
    extract = tarfile.TarFile.extractfile
    monkeypatch.setattr(tarfile.TarFile, "extractfile", lambda self, m: opened.append(m.name) or extract(self, m))
    asked = []
    samples = read_tar(path, keep=lambda key, field: asked.append((key, field)) or field == "json")
    # Every member is offered in shard order; a sample with nothing kept is still listed, empty.
    assert asked == [("000000_000000", "json"), ("000000_000000", "depth.npy"), ("000000_000001", "depth.npy"),
                     ("000000_000002", "json")]
    assert samples == {"000000_000000": {"json": b"{}"}, "000000_000001": {}, "000000_000002": {"json": b"[]"}}
    assert opened == ["000000_000000.json", "000000_000002.json"]  # skipped members' bytes are never read
    assert read_tar(path) == {"000000_000000": {"json": b"{}", "depth.npy": depth},
                              "000000_000001": {"depth.npy": depth}, "000000_000002": {"json": b"[]"}}


@pytest.mark.parametrize(
    ("members", "error"),
    [
        ([("000000_000000.json", b"{}"), ("../evil.npy", b"x")], "unsafe or unexpected member"),
        ([("000000_000000.json", b"{}"), ("000000_000000.depth.npy", b"a"), ("000000_000000.depth.npy", b"b")],
         "appears twice"),
    ],
)
def test_member_filter_still_refuses_bad_skipped_members(tmp_path, members, error):
    path = tmp_path / "bad.tar"
    path.write_bytes(tar_bytes(members))
    with pytest.raises(ShardReadError, match=error):
        read_tar(path, keep=lambda key, field: field == "json")


def test_member_filter_still_finds_a_truncated_shard(tmp_path):
    path = tmp_path / "t.tar"
    data = tar_bytes([("000000_000000.json", b"{}"), ("000000_000000.depth.npy", np.zeros(5000, np.float32).tobytes())])
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ShardReadError):
        read_tar(path, keep=lambda key, field: field == "json")
