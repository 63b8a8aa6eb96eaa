"""One job per target: an exclusive OS lock (flock) held for the job's life.

The kernel drops a flock when its process dies, so a stale lock file never blocks.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from worker.config import Settings
from worker.errors import LockHeld


def default_lock_path(settings: Settings) -> str:
    """A per-target lock file in the system temp dir."""
    digest = hashlib.sha256(settings.target.base_url.encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"zuora-reaper-{digest}.lock")


@contextlib.contextmanager
def job_lock(settings: Settings) -> Iterator[str]:
    """Hold the lock while the body runs; raise LockHeld at once if another job has it."""
    path = settings.run.lock_file or default_lock_path(settings)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise LockHeld(f"another zuora-reaper job (pid {holder}) holds the lock {path} "
                           f"for {settings.target.base_url}; this job sent nothing") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing releases the flock
