"""One run of a job at a time, across threads and processes: an exclusive lock file per job.

``flock`` locks belong to the open file, so two threads of one process exclude each other
as well as two processes, and the operating system releases the lock when its holder dies:
a crashed run never leaves a job locked.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class JobBusy(RuntimeError):
    """Another run of the same job holds its lock."""


@contextmanager
def job_lock(lock_dir: Path, job: str, holder: str) -> Iterator[None]:
    """Hold ``<lock_dir>/<job>.lock`` for the block, or raise `JobBusy` at once."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / f"{job}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = path.read_text().strip() or "another process"
            raise JobBusy(
                f"job {job!r} is already running ({other}); wait for it to finish "
                "(`kirana jobs runs --job " + job + "`)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{holder}, pid {os.getpid()}".encode())
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
