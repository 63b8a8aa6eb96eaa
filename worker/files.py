"""Local files, handled as a hostile machine would test them: bounded reads of every input
file, and no write that replaces anything but a regular file (or a missing path).

- Inputs (config, ids, secret files, plans) are read with a size cap, so ``/dev/zero`` or a
  runaway file is a clear config error (exit 2), not a ``MemoryError``.
- Outputs (report, plan, metrics) are written by temp file + rename, which would replace a
  symlink, a device node or a FIFO with a regular file (``--report-file /dev/stdout`` as root
  would replace the device node). A path that exists and is not a regular file is refused,
  before any network call and again when writing.
- ``write_atomic`` gives the file the mode the umask gives a new file (as ``open`` would;
  ``mkstemp`` alone makes it 0600), and fsyncs the file and then its folder, so the rename
  itself survives a power cut.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from worker.errors import ConfigError

MIB = 2**20
CONFIG_CAP = 1 * MIB
SECRET_CAP = 64 * 1024
IDS_CAP = 64 * MIB  # about two million ids
PLAN_CAP = 256 * MIB  # a plan of a million runs is ~150 MB


def read_capped(key: str, path: str, cap: int, what: str) -> str:
    """The UTF-8 text of ``path``; ConfigError naming ``key`` when it cannot be read, is not
    UTF-8, or is larger than ``cap`` bytes (read no further than that)."""
    _check_no_nul(key, path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(key, f"cannot read {what} {path}: {exc.strerror}") from exc
    if stat.S_ISDIR(os.fstat(fd).st_mode):  # before fdopen, which refuses a directory itself
        os.close(fd)
        raise ConfigError(key, f"{what} {path} is a directory (a Secret volume mounted where "
                               "its file was meant to be?)")
    try:
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(cap + 1)
    except OSError as exc:
        raise ConfigError(key, f"cannot read {what} {path}: {exc.strerror}") from exc
    return decode_capped(key, path, data, cap, what)


def decode_capped(key: str, path: str, data: bytes, cap: int, what: str) -> str:
    if len(data) > cap:
        raise ConfigError(key, f"{what} {path} is larger than {_size(cap)}; refusing to read "
                               "it (is it the right file?)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(key, f"{what} {path} is not UTF-8 text ({exc.reason} at byte "
                               f"{exc.start})") from exc


def _size(cap: int) -> str:
    return f"{cap // MIB} MiB" if cap >= MIB else f"{cap // 1024} KiB"


def check_output_path(key: str, path: str) -> None:
    """ConfigError when ``path`` exists and is not a regular file (a symlink, a device node, a
    FIFO, a directory): writing it would replace that with a regular file; or when its folder
    does not exist (a typo there is not silently made into a new tree of folders)."""
    _check_no_nul(key, path)
    problem = not_a_regular_file(path)
    if problem:
        raise ConfigError(key, f"{path} is {problem}: refusing to replace it; give a path to "
                               "a regular file or a new one")
    check_output_folder(key, path)


def check_output_folder(key: str, path: str) -> None:
    """ConfigError when the folder ``path`` goes in does not exist."""
    _check_no_nul(key, path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConfigError(key, f"the folder {folder} does not exist; create it first (the "
                               "tool does not create folders for its output)")


def _check_no_nul(key: str, path: str) -> None:
    if "\x00" in path:
        raise ConfigError(key, "the path holds a NUL character; no file can have that name")


def not_a_regular_file(path: str) -> str | None:
    """What ``path`` is when it exists and is not a regular file (symlinks not followed)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISLNK, "a symlink"), (stat.S_ISDIR, "a directory"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def refuse_non_regular(path: str) -> None:
    """At write time (the path may have changed since the config check): an OSError."""
    problem = not_a_regular_file(path)
    if problem:
        raise OSError(f"{path} is {problem}: refusing to replace it")


def write_atomic(path: str, text: str | Iterable[str]) -> None:
    """Write ``text`` (or its chunks) to ``path`` via a temp file in the same folder + rename;
    the previous file stays whole when anything fails."""
    target = Path(path)
    refuse_non_regular(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for chunk in (text,) if isinstance(text, str) else text:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)


def current_umask() -> int:
    """This process's umask, read without changing it (Linux's /proc), else by setting it back."""
    with contextlib.suppress(OSError, ValueError), \
            open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable; a file system that cannot sync folders is fine."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
