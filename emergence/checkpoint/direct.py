"""Large checkpoints with direct I/O: written through reused staging buffers, read into their final buffer.

A buffered `write()` copies every byte into freshly allocated page-cache pages, which
the kernel later writes back; with the checksum hashed beside it, a checkpoint needs
~1.7x the CPU of a raw buffered write of the same bytes (0.14 s vs 0.08 s for 256 MiB
here), and on a machine with no idle core that is its speed (0.6x). With `O_DIRECT`
the bytes go from a few page-aligned staging buffers, kept from one save to the next
(no page faults after the first), straight to the device, while a second thread
fills the next buffer: the copy is one memcpy into a hot buffer and no writeback
follows (0.05 s of CPU for the same 256 MiB, 1.0x a raw buffered write with the hash).

The layout on disk is the same safetensors file: blocks of `BLOCK` bytes at aligned
offsets, the last one padded to the 4 KiB alignment and the file truncated back to its
size, the header (written as a placeholder first) rewritten last as its own aligned
block. Where the filesystem refuses `O_DIRECT` (tmpfs on older kernels, some FUSE
mounts) `write_direct` returns False before writing anything and the caller writes
buffered. Linux only.

Reads (`read_direct`) go straight from the device into one fresh page-aligned buffer
that the arrays then view, four 8 MiB requests in flight, each block handed to the hash
as it lands: no page-cache copy (cold read + verify of 256 MiB: 1.07 ± 0.10x a raw
buffered read, against 0.68 ± 0.24x reading buffered; 7 rounds on the loaded 2-core box).
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

ALIGN = 4096
BLOCK = 4 * 1024 * 1024
BUFFERS = 3  # one being filled, one being written, one spare so the filler rarely waits
MIN_BYTES = 16 * 1024 * 1024  # below this a buffered write is as fast: direct I/O is not tried
READ_BLOCK = 8 * 1024 * 1024
READS_IN_FLIGHT = 4  # direct reads get no readahead: keep this many requests queued (1 x 16 MiB: 0.77x raw)
_pool: list[mmap.mmap] = []
_pool_lock = threading.Lock()


def available() -> bool:
    """This platform has `O_DIRECT` (Linux)."""
    return hasattr(os, "O_DIRECT")


def _take_buffers() -> list[mmap.mmap]:
    """`BUFFERS` page-aligned staging buffers: the ones kept from the last write, or new ones if in use."""
    with _pool_lock:
        if len(_pool) >= BUFFERS:
            taken = _pool[-BUFFERS:]
            del _pool[-BUFFERS:]
            return taken
    return [mmap.mmap(-1, BLOCK) for _ in range(BUFFERS)]


def _give_back(buffers: list[mmap.mmap]) -> None:
    with _pool_lock:
        if not _pool:  # keep one set (12 MiB) for the next save; more would only hold memory
            _pool.extend(buffers)


def _set_direct(fd: int, on: bool) -> bool:
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_DIRECT if on else flags & ~os.O_DIRECT)
    except OSError:
        return False
    return True


class _Blocks:
    """Fills staging buffers from a stream of pieces and hands each full one to a writer thread."""

    def __init__(self, fd: int, buffers: list[mmap.mmap]) -> None:
        self.fd, self.buffers = fd, buffers
        self.views = [memoryview(b) for b in buffers]
        self.pending: list[Future | None] = [None] * len(buffers)
        self.current, self.fill, self.offset = 0, 0, 0
        try:
            self.thread: ThreadPoolExecutor | None = ThreadPoolExecutor(1, thread_name_prefix="emergence-direct-write")
        except RuntimeError:  # at interpreter exit: write on this thread
            self.thread = None

    def add(self, piece: memoryview) -> None:
        done = 0
        while done < len(piece):
            take = min(len(piece) - done, BLOCK - self.fill)
            self.views[self.current][self.fill : self.fill + take] = piece[done : done + take]
            self.fill += take
            done += take
            if self.fill == BLOCK:
                self._flush(BLOCK)

    def _flush(self, length: int) -> None:
        view, offset = self.views[self.current][:length], self.offset
        try:
            future = self.thread.submit(os.pwrite, self.fd, view, offset) if self.thread else None
        except RuntimeError:
            future = None
        if future is None:
            os.pwrite(self.fd, view, offset)
        self.pending[self.current] = future
        self.offset += length
        self.current = (self.current + 1) % len(self.buffers)
        self.fill = 0
        self._wait(self.current)  # the next buffer to fill must be written out first

    def _wait(self, index: int) -> None:
        future, self.pending[index] = self.pending[index], None
        if future is not None:
            future.result()

    def finish(self) -> None:
        """Write the last, partial block padded to `ALIGN` (the caller truncates), and wait for every write."""
        try:
            if self.fill:
                padded = -(-self.fill // ALIGN) * ALIGN
                self.views[self.current][self.fill : padded] = bytes(padded - self.fill)
                self._flush(padded)
            for index in range(len(self.buffers)):
                self._wait(index)
        finally:
            self.close()

    def close(self) -> None:
        for index in range(len(self.buffers)):
            future, self.pending[index] = self.pending[index], None
            if future is not None:
                future.exception()  # wait; the error, if any, was or will be raised by finish()
        for view in self.views:
            view.release()
        if self.thread is not None:
            self.thread.shutdown()


def write_direct(handle: BinaryIO, pieces: Sequence[memoryview]) -> bool:
    """Write `pieces` back to back from offset 0 of `handle`'s file with `O_DIRECT`; False if refused.

    Returns False, with nothing written, when the filesystem refuses direct I/O; the
    caller then writes buffered.
    """
    fd = handle.fileno()
    if not available() or not _set_direct(fd, True):
        return False
    buffers = _take_buffers()
    blocks = _Blocks(fd, buffers)
    try:
        try:
            for piece in pieces:
                blocks.add(piece)
        except BaseException:
            blocks.close()
            raise
        blocks.finish()
    except OSError as err:
        _set_direct(fd, False)
        if err.errno != errno.EINVAL:
            raise
        os.ftruncate(fd, 0)  # an alignment this filesystem does not take: start over, buffered
        return False
    finally:
        _give_back(buffers)
    os.ftruncate(fd, sum(len(piece) for piece in pieces))
    return True


def rewrite_head(handle: BinaryIO, pieces: Sequence[memoryview], header: bytes) -> None:
    """Replace the file's leading `len(header)` bytes, written by `write_direct`, with `header`.

    Rewrites the aligned block(s) holding it (`header`, then the bytes that followed it
    in `pieces`), directly: a buffered write of part of a page would first read it back.
    """
    fd = handle.fileno()
    total = sum(len(piece) for piece in pieces)
    length = min(-(-len(header) // ALIGN) * ALIGN, -(-total // ALIGN) * ALIGN)
    block = mmap.mmap(-1, length)
    try:
        view, filled = memoryview(block), 0
        for piece in pieces:
            if filled >= length:
                break
            take = min(len(piece), length - filled)
            view[filled : filled + take] = piece[:take]
            filled += take
        view[: len(header)] = header
        os.pwrite(fd, view, 0)
        view.release()
    finally:
        block.close()
    os.ftruncate(fd, total)
    _set_direct(fd, False)


def read_direct(path: Path, size: int, start: int, on_data: Callable[[memoryview], None]) -> memoryview | None:
    """Bytes `start` to `size` of `path`, read with `O_DIRECT` into a new page-aligned buffer; None if refused.

    `READS_IN_FLIGHT` requests of `READ_BLOCK` bytes are kept in flight (what readahead
    does for buffered reads); `on_data` gets each block's bytes from `start` on, in file
    order, as they land (the checksum). A result shorter than `size - start` means the
    file was shorter than `size` (truncated while reading). None, with nothing handed to
    `on_data`, when the filesystem refuses direct I/O: the caller reads buffered.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        pool = ThreadPoolExecutor(READS_IN_FLIGHT, thread_name_prefix="emergence-direct-read")
    except (OSError, RuntimeError) as err:  # RuntimeError: no new threads at interpreter exit
        if isinstance(err, OSError) and err.errno != errno.EINVAL:
            raise
        return None
    view = memoryview(mmap.mmap(-1, -(-size // ALIGN) * ALIGN))
    try:
        offsets = range(0, size, READ_BLOCK)
        reads = [pool.submit(os.preadv, fd, [view[offset : offset + READ_BLOCK]], offset) for offset in offsets]
        done = _hand_over(reads, offsets, (start, size), view, on_data)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        os.close(fd)
    return None if done is None else view[start : max(start, min(done, size))]


def _hand_over(
    reads: list[Future], offsets: range, span: tuple[int, int], view: memoryview, on_data: Callable[[memoryview], None]
) -> int | None:
    """Wait for the reads in order, handing each block's part of `span` on; the bytes read back to back from 0."""
    start, size = span
    done = 0
    for offset, read in zip(offsets, reads):
        try:
            got = read.result()
        except OSError as err:
            if err.errno == errno.EINVAL and offset == 0:
                return None
            raise
        if offset != done or got <= 0:
            break  # an earlier block came back short: the file ended there
        if done + got > start:
            on_data(view[max(done, start) : min(done + got, size)])
        done += got
    return done
