"""One ``run`` per target: an exclusive OS lock (flock) held for the job's life.

A target is its identity (base URL, principal, entity: ``config.Identity``), not its host.
Only ``run`` takes the lock: a person's read-only ``plan`` cancels nothing, so it never makes
the scheduled ``run`` exit 4.

The kernel drops a flock when its process dies, so a stale lock file never blocks. The lock
file is handled as a shared temp directory deserves: the default one lives in a private
directory (``$XDG_RUNTIME_DIR/zuora-reaper``, else ``<tmp>/zuora-reaper-<uid>``, mode 0700 and
ours, or the job refuses); it is opened with ``O_NOFOLLOW`` (a planted symlink is refused, not
followed), must be a regular file, and a file this tool did not write (anything but a pid) is
never truncated.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
import tempfile
from collections.abc import Iterator

from worker.config import Settings
from worker.errors import ConfigError, LockHeld

KEY = "run.lock_file"
_OURS = re.compile(rb"\s*\d{1,10}\s*")  # what this tool writes in a lock file: its pid


def lock_dir() -> str:
    """The private directory of default lock files (created 0700 when missing)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isdir(runtime):
        path = os.path.join(runtime, "zuora-reaper")
    else:
        path = os.path.join(tempfile.gettempdir(), f"zuora-reaper-{os.getuid()}")
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() \
            or info.st_mode & 0o077:
        raise ConfigError(KEY, f"{path} is not a private directory of this user (a directory "
                               f"owned by uid {os.getuid()}, mode 0700): remove it, or give "
                               "--lock-file")
    return path


def default_lock_path(settings: Settings) -> str:
    """A per-target lock file in the private lock directory: one per base URL, principal and
    entity, so two tenants on one host never share it."""
    return os.path.join(lock_dir(), f"zuora-reaper-{settings.identity.key}.lock")


def _open_lock(path: str) -> tuple[int, bool]:
    """(fd, created): never through a symlink, only a regular file."""
    flags = os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        return os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600), True
    except FileExistsError:
        pass
    try:
        fd = os.open(path, flags | os.O_NONBLOCK)  # a FIFO must not block the open
    except OSError as exc:
        what = "a symlink" if os.path.islink(path) else exc.strerror
        raise ConfigError(KEY, f"cannot use {path} as the lock file: {what}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ConfigError(KEY, f"{path} is not a regular file: refusing it as the lock file")
    return fd, False


@contextlib.contextmanager
def job_lock(settings: Settings) -> Iterator[str]:
    """Hold the lock while the body runs; raise LockHeld at once if another job has it."""
    path = settings.run.lock_file or default_lock_path(settings)
    fd, created = _open_lock(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise LockHeld(f"another zuora-reaper job (pid {holder}) holds the lock {path} "
                           f"for {settings.identity.describe()}; this job sent nothing") from exc
        content = os.pread(fd, 64, 0)
        if not created and content and not _OURS.fullmatch(content):
            raise ConfigError(KEY, f"{path} exists and is not a zuora-reaper lock file: "
                                   "refusing to overwrite it; give another --lock-file")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing releases the flock
