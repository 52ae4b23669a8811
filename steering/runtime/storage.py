"""Where outputs go, and what happens when the file system says no.

One place for the three things every writer needs:

- ``probe(path)``: before any work, check that a directory can be created and written (a
  probe file is written there and removed; directories the probe made are removed again), so a
  read-only, full or misspelled output location stops a run in a millisecond, not after hours.
- ``StorageError``: an ``OSError`` from a write (no space, quota, read-only, permission, I/O
  error, a file where a directory should be) as one sentence naming the file, the errno's
  meaning, the mount and what to do. ``steering.runtime.cli`` prints it as one ``error:`` line.
- ``rescue(save, failed)``: when a finished training cannot write its checkpoint, write it
  instead to a fallback directory (``$STEERING_RESCUE_DIR``, ``$TMPDIR``, ``/tmp``,
  ``/var/tmp``, ``/dev/shm``, home), preferring one on another file system than the one that
  failed, and say where it went.

``staged_dir(target)`` writes a directory's files into a sibling staging directory and moves
them into ``target`` only when all of them were written, so a save that fails half-way leaves
the target as it was (absent, or the previous checkpoint whole).

``follow_umask(path)`` gives a written file or tree the modes a plain ``open``/``mkdir`` would
under the process's umask. Writers that create files privately (safetensors and the HF
``save_pretrained`` family write 0600, ``mkdtemp`` makes 0700 directories) would otherwise
leave trained weights that the user's group cannot read on a shared file system.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

# errno -> (what it means, what to do); "{mount}" and "{dir}" are filled in.
ADVICE = {
    errno.ENOSPC: ("no space left on device", "free space on {mount} (df -h {mount})"),
    errno.EDQUOT: ("disk quota exceeded", "free some of your quota on {mount}"),
    errno.EROFS: ("read-only file system", "{mount} is mounted read-only"),
    errno.EACCES: ("permission denied", "check the permissions of {dir} (ls -ld {dir})"),
    errno.EPERM: ("operation not permitted", "check the permissions of {dir} (ls -ld {dir})"),
    errno.EIO: ("input/output error", "the device failed: check the disk (dmesg), then rerun"),
    errno.ENOTDIR: ("a part of the path is a file, not a directory", "remove or rename it"),
    errno.EISDIR: ("it is a directory", "give a file path"),
    errno.EFBIG: ("file too large", "check the file size limit (ulimit -f)"),
    errno.ENAMETOOLONG: ("file name too long", "use a shorter path"),
}
# Messages of writers that do not set errno: safetensors ("... (os error 28)"), pyarrow.
_ERRNO_IN_TEXT = re.compile(r"os error (\d+)|\[errno (\d+)\]|errno[ =:]+(\d+)", re.IGNORECASE)
RESCUE_ENV = "STEERING_RESCUE_DIR"


def errno_of(e: BaseException) -> int | None:
    """The errno of an I/O failure, from the exception or its message; None if it has none."""
    if isinstance(e, OSError) and e.errno:
        return e.errno
    m = _ERRNO_IN_TEXT.search(str(e))
    return int(next(g for g in m.groups() if g)) if m else None


def is_io_failure(e: BaseException) -> bool:
    """Whether ``e`` is the file system refusing a write (not a bug, not bad input)."""
    return errno_of(e) in ADVICE


def existing_ancestor(path: Path) -> Path:
    """The nearest part of ``path`` (itself included) that exists."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def mount_of(path: Path) -> Path:
    """The mount point of the file system that holds (or would hold) ``path``."""
    path = existing_ancestor(path)
    while not os.path.ismount(path):
        path = path.parent
    return path


class StorageError(OSError):
    """A write the file system refused, told in one sentence (``str``); ``flag`` names the
    option that puts the output elsewhere (``--output-dir``), for the advice."""

    def __init__(self, path: Path | str, code: int | None, doing: str = "write", detail: str = ""):
        super().__init__(code, ADVICE.get(code, ("I/O error", ""))[0], str(path))
        self.path, self.code, self.doing, self.detail = Path(path), code, doing, detail
        self.flag: str | None = None
        self.after = ""  # what happened next (a rescued checkpoint, kept resume checkpoints)

    def __str__(self) -> str:
        meaning, todo = ADVICE.get(self.code, (os.strerror(self.code) if self.code else "", ""))
        where = self.path if self.path.is_dir() else self.path.parent
        mount = mount_of(self.path)
        todo = todo.format(mount=mount, dir=existing_ancestor(where))
        elsewhere = f"pass {self.flag} elsewhere" if self.flag else "write elsewhere"
        todo = f"{todo}, or {elsewhere}" if todo else elsewhere
        name = errno.errorcode.get(self.code, "") if self.code else ""
        told = f"{meaning} ({name})" if name else meaning
        detail = f" ({self.detail})" if self.detail else ""
        return f"cannot {self.doing} {self.path}: {told}{detail}; {todo}{self.after}"

    @classmethod
    def of(cls, e: BaseException, path: Path | str, doing: str = "write") -> StorageError:
        if isinstance(e, StorageError):
            return e
        failed = getattr(e, "filename", None) or path  # the very file, when the OS names it
        return cls(failed, errno_of(e), doing)


@contextlib.contextmanager
def writing(path: Path | str, doing: str = "write") -> Iterator[None]:
    """Turn a refused write inside the block into a ``StorageError`` naming ``path``."""
    try:
        yield
    except StorageError:
        raise
    except Exception as e:
        if not is_io_failure(e):
            raise
        raise StorageError.of(e, path, doing) from e


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def probe(path: Path | str, need_bytes: int = 0, what: str = "output directory") -> None:
    """Check, before any work, that directory ``path`` can be made and written, with
    ``need_bytes`` free; ``StorageError`` (``ValueError`` for a file in its place) otherwise.
    Leaves nothing behind: the probe file and any directory it made are removed."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {path} exists and is a file; pass another one")
    base = existing_ancestor(path)
    if not base.is_dir():
        raise ValueError(f"{what} {path}: {base} is a file, not a directory; pass another one")
    made: list[Path] = []
    try:
        _make_and_write(path, made)
        free = shutil.disk_usage(path).free
        if need_bytes > free:
            detail = f"needs ~{human(need_bytes)}, {human(free)} free"
            raise StorageError(path, errno.ENOSPC, f"write the {what}", detail)
    except StorageError as e:
        e.after = "; checked before any work: nothing was loaded"
        raise
    except OSError as e:
        err = StorageError.of(e, path, f"write the {what}")
        err.after = "; checked before any work: nothing was loaded"
        raise err from e
    finally:
        for d in reversed(made):
            with contextlib.suppress(OSError):
                d.rmdir()


def _make_and_write(path: Path, made: list[Path], tries: int = 3) -> None:
    """Make ``path`` and its missing parents (recording in ``made`` those made here) and write
    a probe file in it. Jobs that start together probe siblings under one new parent: one may
    make a parent the other is about to make, or remove an empty one the other just saw, so a
    parent that appears is taken as is and a parent that vanishes is made again."""
    for attempt in range(tries):
        try:
            for d in reversed([path, *path.parents]):
                if not d.exists():
                    try:
                        d.mkdir()
                    except FileExistsError:
                        continue  # another process made it first
                    made.append(d)
            probe_file = path / f".write-probe-{os.getpid()}"
            try:
                probe_file.write_bytes(b"probe")
            finally:
                probe_file.unlink(missing_ok=True)
            return
        except FileNotFoundError:
            if attempt == tries - 1:
                raise


def current_umask() -> int:
    """The process's umask (read from /proc where it can be, so no other thread sees it
    change; else set and restored)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: Path | str) -> None:
    """Set ``path`` and, for a directory, everything under it to 0666 (files) or 0777
    (directories) less the umask; symbolic links are left alone."""
    path, mask = Path(path), current_umask()
    entries = [path] + (sorted(path.rglob("*")) if path.is_dir() and not path.is_symlink() else [])
    for entry in entries:
        if entry.is_symlink() or not entry.exists():
            continue
        os.chmod(entry, (0o777 if entry.is_dir() else 0o666) & ~mask)


@contextlib.contextmanager
def staged_dir(target: Path | str, last: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield an empty sibling directory of ``target`` to write; when the block succeeds its
    entries replace ``target``'s entries of the same name (renames, no copies; the names in
    ``last``, the files that mark the directory complete, go last); on error it is removed
    and ``target`` stays as it was. Refused writes raise ``StorageError``."""
    target = Path(target)
    with writing(target.parent, "create"):
        target.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.stage-", dir=target.parent))
    try:
        with writing(target):
            try:
                yield stage
            except StorageError as e:  # name the file the user asked for, not the stage
                failed, staged = Path(os.path.abspath(e.path)), Path(os.path.abspath(stage))
                if failed.is_relative_to(staged):
                    e.path = target / failed.relative_to(staged)
                raise
            target.mkdir(exist_ok=True)
            for entry in stage.iterdir():
                follow_umask(entry)
            rank = {name: i for i, name in enumerate(last)}
            for entry in sorted(stage.iterdir(), key=lambda e: (rank.get(e.name, -1), e.name)):
                dest = target / entry.name
                if dest.is_dir() and not dest.is_symlink():
                    shutil.rmtree(dest)  # a subdirectory (lora/, model/) is replaced whole
                os.replace(entry, dest)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def rescue_candidates(failed: Path) -> list[Path]:
    """Directories a rescued checkpoint may go to: ``$STEERING_RESCUE_DIR`` first, then the
    temporary and home directories, those on another file system than ``failed`` first."""
    chosen = os.environ.get(RESCUE_ENV)
    named = [os.environ.get("TMPDIR"), "/tmp", "/var/tmp", "/dev/shm", str(Path.home())]
    found = dict.fromkeys(Path(d).resolve() for d in [chosen, *named] if d and Path(d).is_dir())
    first = [p for p in found if chosen and p == Path(chosen).resolve()]
    rest = [p for p in found if p not in first]
    failed_dev = existing_ancestor(failed).stat().st_dev
    return first + sorted(rest, key=lambda p: p.stat().st_dev == failed_dev)  # stable sort


def rescue(save: Callable[[Path], None], failed: Path, name: str) -> Path | None:
    """Call ``save(directory)`` on a new directory in the first rescue candidate that takes
    it; the directory, or None when no candidate could hold it."""
    for where in rescue_candidates(failed):
        try:
            d = Path(tempfile.mkdtemp(prefix=f"steering-rescue-{name}-", dir=where))
        except OSError:
            continue
        try:
            save(d)
            follow_umask(d)
            return d
        except Exception as e:
            shutil.rmtree(d, ignore_errors=True)
            if not is_io_failure(e):
                raise
    return None


def save_or_rescue(
    write: Callable[[Path], None],
    target: Path,
    name: str,
    last: tuple[str, ...] = (),
    resume_dir: Path | None = None,
    before: Callable[[], None] | None = None,
    rescue_write: Callable[[Path], None] | None = None,
) -> None:
    """``before()`` (a file written outside ``target``), then ``write(directory)`` into
    ``target`` whole or not at all (``staged_dir``); when the file system refuses either,
    ``rescue_write`` (default ``write``) goes to a rescue directory and the ``StorageError``
    says where the result went and how to move it into place."""
    try:
        if before is not None:
            before()
        with staged_dir(target, last) as stage:
            write(stage)
    except StorageError as e:
        rescued = rescue(rescue_write or write, target, name)
        e.after = rescue_note(rescued, target, resume_dir)
        raise


def rescue_note(rescued: Path | None, target: Path, resume_dir: Path | None = None) -> str:
    """What a failed save's error adds about the trained weights (and resume checkpoints)."""
    if rescued is None:
        tried = ", ".join(map(str, rescue_candidates(target)))
        note = f"\n  no rescue location could hold the trained weights either (tried {tried}"
        note += f"; set {RESCUE_ENV} to a directory with room)"
    else:
        move = f"mv {rescued} {target}"
        if target.exists():
            move = f"rm -r {target} && {move}"
        note = (
            f"\n  the trained weights are safe: the whole checkpoint is in {rescued}; "
            f"move it into place with `{move}`, or evaluate it there "
            f"(scripts/inference.py --ckpt-path {rescued})"
        )
    if resume_dir is not None and resume_dir.is_dir() and any(resume_dir.iterdir()):
        note += f"\n  the resume checkpoints in {resume_dir} are kept: rerunning resumes there"
    return note
