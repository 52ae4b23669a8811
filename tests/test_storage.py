"""steering/runtime/storage.py: refused writes told in one sentence, probes that leave nothing,
staged directories that are whole or untouched, rescue locations off the failed file system.

The file-system faults are real: a tmpfs mounted by the test (root), read-only or full."""

import errno
import os
from pathlib import Path

import pytest

from steering.runtime import storage
from steering.runtime.io import write_text
from tests.mounts import full_tmpfs, mount_reason, read_only_dir

ERRNO_MESSAGES = [
    (errno.ENOSPC, "no space left on device (ENOSPC)", "free space on {mount} (df -h {mount})"),
    (errno.EDQUOT, "disk quota exceeded (EDQUOT)", "free some of your quota on {mount}"),
    (errno.EROFS, "read-only file system (EROFS)", "{mount} is mounted read-only"),
    (errno.EACCES, "permission denied (EACCES)", "check the permissions of {dir}"),
    (errno.EIO, "input/output error (EIO)", "check the disk (dmesg)"),
]


@pytest.mark.parametrize("code, meaning, advice", ERRNO_MESSAGES, ids=lambda v: str(v)[:12])
def test_each_errno_names_the_file_its_meaning_and_what_to_do(tmp_path, code, meaning, advice):
    target = tmp_path / "out" / "adapter.safetensors"
    e = storage.StorageError(target, code)
    e.flag = "--output-dir"
    text = str(e)
    assert text.startswith(f"cannot write {target}: {meaning}")
    mount = storage.mount_of(tmp_path)
    assert advice.format(mount=mount, dir=tmp_path) in text
    assert text.endswith("or pass --output-dir elsewhere") and "\n" not in text


@pytest.mark.parametrize(
    "message, code",
    [
        ("No space left on device (os error 28)", 28),  # safetensors
        ("[Errno 30] Read-only file system: 'x'", 30),  # Python, pyarrow
        ("IOError: errno 122 quota", 122),
        ("shape mismatch", None),
    ],
)
def test_errno_is_read_from_writers_that_only_say_it(message, code):
    assert storage.errno_of(RuntimeError(message)) == code
    assert storage.is_io_failure(RuntimeError(message)) == (code is not None)


def test_a_bug_is_not_taken_for_a_full_disk(tmp_path):
    with pytest.raises(KeyError), storage.writing(tmp_path / "x"):
        raise KeyError("a bug stays a bug")


def test_probe_leaves_nothing_and_refuses_what_cannot_fit(tmp_path):
    storage.probe(tmp_path / "a" / "b" / "c")
    assert list(tmp_path.iterdir()) == []  # the directories it made are gone again
    with pytest.raises(storage.StorageError) as e:
        storage.probe(tmp_path / "d", need_bytes=2**62, what="checkpoint directory")
    assert e.value.code == errno.ENOSPC and "needs ~" in str(e.value) and "free" in str(e.value)
    assert "nothing was loaded" in str(e.value) and list(tmp_path.iterdir()) == []
    (tmp_path / "afile").write_text("x")
    for bad in (tmp_path / "afile", tmp_path / "afile" / "sub"):
        with pytest.raises(ValueError, match="afile"):
            storage.probe(bad)


def test_probe_of_sibling_jobs_that_start_together(tmp_path, monkeypatch):
    """Two jobs probe seed0/ and seed1/ under one new parent: the other job makes the parent
    between our look and our mkdir, or removes it (its probe's clean-up) just after we saw it.
    Both once raised EEXIST/ENOENT and failed a job that had nothing wrong with it."""
    parent = tmp_path / "runs"
    real_mkdir = Path.mkdir
    races = {"made": 0, "removed": 0}

    def racing_mkdir(self, *args, **kwargs):
        if self == parent and not races["made"]:
            races["made"] += 1
            os.mkdir(self)  # the other job got there first: ours now raises EEXIST
        elif self == parent / "seed0" and not races["removed"]:
            races["removed"] += 1
            os.rmdir(parent)  # the other job's clean-up: ours now raises ENOENT
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", racing_mkdir)
    storage.probe(parent / "seed0")
    assert races == {"made": 1, "removed": 1}
    assert not (parent / "seed0").exists()  # still leaves nothing of its own behind


def test_a_read_only_target_is_refused_with_its_mount(tmp_path):
    with read_only_dir(tmp_path / "ro") as ro:
        with pytest.raises(storage.StorageError) as e:
            storage.probe(ro / "run")
        assert e.value.code in (errno.EROFS, errno.EACCES) and str(ro) in str(e.value)
        with pytest.raises(storage.StorageError) as e:
            write_text(ro / "t.csv", "a,b\n")
        assert str(ro / "t.csv") in str(e.value) and os.listdir(ro) == []


@pytest.mark.skipif(mount_reason() is not None, reason=mount_reason() or "")
def test_staged_dir_is_whole_or_leaves_the_old_one(tmp_path):
    with full_tmpfs(tmp_path / "mnt", free=8192) as mnt:
        target = mnt / "ckpt"
        target.mkdir()
        (target / "old.json").write_text("old")
        with pytest.raises(storage.StorageError) as e:
            with storage.staged_dir(target) as stage:
                (stage / "new.json").write_text("new")
                write_text(stage / "big.bin", "x" * 65536)
        assert e.value.path == target / "big.bin"  # named where the user asked, not the stage
        assert sorted(os.listdir(mnt)) == ["ckpt", "filler"]  # no stage left behind
        assert os.listdir(target) == ["old.json"]
    with storage.staged_dir(tmp_path / "ok", last=("a.json",)) as stage:
        (stage / "a.json").write_text("a")
        (stage / "sub").mkdir()
        (stage / "z.txt").write_text("z")
    assert sorted(os.listdir(tmp_path / "ok")) == ["a.json", "sub", "z.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnt", "ok"]


@pytest.mark.skipif(mount_reason() is not None, reason=mount_reason() or "")
def test_rescue_prefers_another_file_system(tmp_path, monkeypatch):
    monkeypatch.delenv(storage.RESCUE_ENV, raising=False)
    with full_tmpfs(tmp_path / "mnt", free=0) as mnt:
        monkeypatch.setenv("TMPDIR", str(mnt))  # same file system as the failure: last
        found = storage.rescue_candidates(mnt / "ckpt")
        assert found[-1] == mnt.resolve() and len(found) > 1
        monkeypatch.setenv(storage.RESCUE_ENV, str(tmp_path))
        assert storage.rescue_candidates(mnt / "ckpt")[0] == tmp_path.resolve()
        saved = storage.rescue(lambda d: (d / "w").write_text("weights"), mnt / "ckpt", "v")
        assert saved.parent == tmp_path.resolve() and (saved / "w").read_text() == "weights"
