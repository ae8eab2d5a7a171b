"""Output files that are checked before the work and replaced whole, or not at all.

A file is written under a temporary name in its own folder, flushed to disk, then renamed over
the target: a crash, a full disk or a file-size limit leaves the previous file as it was and no
half-written one. Output paths are checked before any work, so a typo costs nothing.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path


def check_output_file(path: str | Path, what: str, inputs: Sequence[str | Path] = ()) -> Path:
    """`path` as a Path, after checking that a file can be written there: its folder exists and
    is writable, it is not a folder, a FIFO, a device or a socket, and it is none of the `inputs`
    (the files the command reads, which it would overwrite). Raises FileNotFoundError or
    ValueError naming `what`."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_file() and not path.is_dir():
        raise ValueError(
            f"{what} {str(path)!r} is not a regular file (a FIFO, device or socket): name a file"
        )
    for source in inputs:
        if path.exists() and Path(source).exists() and os.path.samefile(path, source):
            raise ValueError(
                f"{what} {str(path)!r} is the input {str(source)!r}: writing there would overwrite it; name another file"
            )
    folder = path.parent
    if not folder.exists():
        raise FileNotFoundError(f"{what} {str(path)!r}: the folder {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise ValueError(f"{what} {str(path)!r}: {str(folder)!r} is not a folder")
    if path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a folder; name a file")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {str(path)!r}: the folder {str(folder)!r} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{what} {str(path)!r} exists and is read-only")
    return path


def check_output_dir(path: str | Path, what: str) -> Path:
    """`path` as a Path, after checking that it is a folder or can be made one: nothing there
    but a folder, and its nearest existing ancestor a writable folder."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {str(path)!r} exists and is not a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{what} {str(path)!r}: {str(existing)!r} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {str(path)!r}: {str(existing)!r} is not writable")
    return path


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def replace_durably(source: Path, target: Path) -> None:
    """Flush `source` to disk and rename it over `target` (same file system), durably."""
    fsync_file(source)
    os.replace(source, target)
    fsync_dir(target.parent)


def write_atomically(path: str | Path, write: Callable[[Path], object], what: str = "output") -> Path:
    """Call `write(temporary_path)`, then rename the result over `path`.

    The temporary file lies in the same folder and keeps the suffix (writers such as matplotlib
    choose the format by it). On any failure it is removed, `path` keeps its previous content,
    and an OSError says so.
    """
    path = Path(path)
    remove_stale_temporaries(path)
    tmp = path.with_name(
        f".{path.name}.{TEMPORARY_TAG}-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{path.suffix}"
    )
    try:
        write(tmp)
        replace_durably(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        kept = "it was left as it was" if path.exists() else "nothing was written"
        raise OSError(f"could not write {what} {str(path)!r} ({err.strerror or err}); {kept}") from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


TEMPORARY_TAG = "kronos"


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temporary files of `path` (`write_atomically`'s) left by runs that were killed:
    those whose process no longer exists. Returns what was removed."""
    pattern = f".{glob.escape(path.name)}.{TEMPORARY_TAG}-*.tmp{glob.escape(path.suffix)}"
    removed = []
    for tmp in path.parent.glob(pattern):
        pid = tmp.name[len(f".{path.name}.{TEMPORARY_TAG}-") :].split("-", 1)[0]
        if pid.isdigit() and not _process_exists(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # another user's process, or a platform that cannot tell: keep its file
    return True


def write_text_atomically(path: str | Path, text: str, what: str = "output") -> Path:
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), what)


def save_dir_atomically(target: Path, write: Callable[[Path], object]) -> None:
    """Write a directory beside `target`, flush it to disk, then swap it in.

    The swap is two renames (target -> .NAME.old, .NAME.tmp -> target); a crash between them
    leaves a complete .NAME.tmp, which `recover_interrupted_swaps` moves into place. A crash
    while writing leaves only a partial .NAME.tmp, which it removes.
    """
    tmp = target.with_name(f".{target.name}.tmp")
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        write(tmp)
        for path in tmp.rglob("*"):
            if path.is_file():
                fsync_file(path)
        fsync_dir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    tmp.rename(target)
    fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)


def remove_dir(target: Path) -> None:
    """Delete a directory so that a crash midway leaves nothing that looks like it."""
    doomed = target.with_name(f".{target.name}.deleted")
    shutil.rmtree(doomed, ignore_errors=True)
    target.rename(doomed)
    shutil.rmtree(doomed)


def recover_interrupted_swaps(folder: Path) -> list[str]:
    """Finish the directory swaps (`save_dir_atomically`) and deletions (`remove_dir`) in
    `folder` that a crash interrupted; returns what was done, one line each."""
    done = []
    for old in sorted(folder.glob(".*.old")):
        target = folder / old.name[1 : -len(".old")]
        tmp = folder / f".{target.name}.tmp"
        if not target.exists():
            source = tmp if tmp.is_dir() else old
            source.rename(target)
            done.append(f"restored {target} from {source.name}, left by a crash during its replacement")
        shutil.rmtree(old, ignore_errors=True)
    for leftover in sorted([*folder.glob(".*.tmp"), *folder.glob(".*.deleted")]):
        if leftover.is_dir():
            shutil.rmtree(leftover)
            done.append(f"removed the unfinished {leftover}")
    return done


def write_folder_atomically(
    out_dir: str | Path, write: Callable[[Path], object], what: str, last: tuple[str, ...] = (".md", ".html")
) -> dict[str, Path]:
    """`write(staging)` fills a hidden folder beside `out_dir`; then its files move into `out_dir`
    durably, those with a suffix in `last` after all others (a report never points at plots or
    tables still to come). Nothing lands if `write` fails. Returns relative name -> path."""
    target = check_output_dir(out_dir, what)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-partial-", dir=target.parent))
    try:
        write(staging)
        target.mkdir(exist_ok=True)
        written = {}
        for path in sorted(
            (p for p in staging.rglob("*") if p.is_file()), key=lambda p: (p.suffix in last, p)
        ):
            name = str(path.relative_to(staging))
            written[name] = target / name
            written[name].parent.mkdir(parents=True, exist_ok=True)
            replace_durably(path, written[name])
        return written
    finally:
        shutil.rmtree(staging, ignore_errors=True)
