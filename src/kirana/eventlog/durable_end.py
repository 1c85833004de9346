"""The durable end of a segment log, shared with reader processes through a tiny file.

The writer knows which bytes are fsync'd; a consumer in another process must
never read past them (a crash could take those bytes back, and the consumer
would have acted on an event that was never acknowledged). After every fsync
the writer stores ``(end, active segment base)`` in ``<dir>/END``, a 32-byte
memory-mapped file. Readers map it read-only and poll it.

The pair is written twice, and a reader accepts it only when both copies
agree, so a reader never sees a half-updated value. Nothing here is fsync'd:
after a machine crash the writer recovers the log and republishes.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from pathlib import Path

_PAIR = struct.Struct("<QQ")
_SIZE = 2 * _PAIR.size
FILE_NAME = "END"
_PATIENCE = 1100  # reads before deciding the writer died mid-publish (~0.1 s)


class DurableEnd:
    """The ``END`` file of one log directory, for its writer or its readers."""

    def __init__(self, directory: Path, *, writable: bool) -> None:
        path = Path(directory) / FILE_NAME
        flags = os.O_RDWR | os.O_CREAT if writable else os.O_RDONLY
        try:
            self._fd = os.open(path, flags, 0o644)
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"{path} does not exist: start the log's writer first") from exc
        if writable and os.fstat(self._fd).st_size < _SIZE:
            os.ftruncate(self._fd, _SIZE)
        if not writable and os.fstat(self._fd).st_size < _SIZE:
            os.close(self._fd)
            raise FileNotFoundError(f"{path} is not initialised: start the log's writer first")
        access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
        self._map = mmap.mmap(self._fd, _SIZE, access=access)

    def publish(self, end: int, active_base: int) -> None:
        """Writer: make ``end`` (all bytes before it are durable) visible to readers."""
        _PAIR.pack_into(self._map, 0, end, active_base)
        _PAIR.pack_into(self._map, _PAIR.size, end, active_base)

    def read(self) -> tuple[int, int]:
        """Reader: the latest consistent ``(end, active_base)``.

        Copies that differ mean a publish is in flight: read again. Copies that stay
        different mean the writer stopped between its two stores (it was killed); then
        both are whole values, each published after an fsync, and the one with the
        smaller end is the safe answer (a reader must not spin forever on a dead writer).
        """
        for attempt in range(_PATIENCE):
            first = _PAIR.unpack_from(self._map, 0)
            second = _PAIR.unpack_from(self._map, _PAIR.size)
            if first == second:
                return first
            if attempt >= 100:
                time.sleep(0.0001)
        return min(first, second)

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)
