"""Where summaries go: the user's ``SummaryWriter`` (the same event file as their loss curves) or a log
directory of our own, written without TensorFlow; storage failures are survived, never raised into training.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import functools
import os
import struct
import time
import warnings
import weakref
from collections.abc import Callable
from typing import Union

import torch
from tensorboard.compat.proto import summary_pb2

from . import event_checksums


class StorageFailedWarning(UserWarning):
    """The event file could not be written (log directory gone, disk full); training goes on."""


#: After a storage failure, try a fresh event file at most this often (a full disk is rarely freed at once).
REOPEN_EVERY_S = 30.0


class SummarySink:
    """Where summaries go: the user's ``SummaryWriter`` (shared event file) or a log directory of our own.

    Storage failures never reach the training loop: the first one warns (:class:`StorageFailedWarning`), the
    event file is cut back to its last whole record, and writing resumes in a fresh event file (the directory
    made again if it vanished) as soon as one can be opened; until then records are dropped and counted in
    :attr:`dropped`. Records queued when the process exits -- also by an exception -- are written whole first.
    """

    def __init__(self, writer_or_logdir: object):
        event_checksums.install()  # our records are large: checksum them in C (same bytes on disk)
        if isinstance(writer_or_logdir, (str, os.PathLike)):
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(os.fspath(writer_or_logdir))
            self._owned = True
        elif hasattr(writer_or_logdir, "_get_file_writer"):
            self._writer = writer_or_logdir
            self._owned = False
        else:
            raise TypeError(
                "writer_or_logdir must be a torch.utils.tensorboard.SummaryWriter or a log directory path; "
                f"got {type(writer_or_logdir).__name__}"
            )
        self.dropped = 0  #: records lost to storage failures
        self._failed_at: float | None = None  # monotonic time of the last failure while no file is open
        self._warned = False
        self._closed = False
        self._at_exit = functools.partial(_flush_at_exit, weakref.ref(self))
        atexit.register(self._at_exit)

    @property
    def logdir(self) -> str:
        return self._writer.get_logdir()

    def add_projector_embedding(self, codes: torch.Tensor, labels: list, thumbnails: torch.Tensor, step: int, tag: str) -> None:
        """The codes for TensorBoard's own Projector, as ``SummaryWriter.add_embedding`` writes them."""
        self._guarded(lambda: self._writer.add_embedding(
            codes, metadata=labels, label_img=thumbnails.float() / 255, global_step=int(step), tag=tag))

    def write(self, summary: summary_pb2.Summary, step: int) -> None:
        self._guarded(lambda: self._writer._get_file_writer().add_summary(summary, global_step=int(step), walltime=time.time()))

    def flush(self) -> None:
        self._guarded(self._writer.flush)

    def close(self) -> None:
        """Flush; close the writer only if we opened it (the user's own writer stays theirs)."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._at_exit)
        if self._failed_at is not None and self._owned:  # storage gone and not back: release the file anyway
            with contextlib.suppress(OSError):
                self._writer.close()
            return
        self._guarded(self._writer.close if self._owned else self._writer.flush, reopen=False)

    # -- storage failures --------------------------------------------------------------------------------------

    def _guarded(self, write: Callable[[], None], reopen: bool = True) -> None:
        """Run one write; on a storage failure warn once, salvage the file and carry on. A vanished directory
        is made again at once and the write tried once more, so no record after the loss is dropped."""
        if self._failed_at is not None and not (reopen and self._reopened()):
            self.dropped += 1
            return
        for attempt in range(2):
            try:
                if reopen and not os.path.isdir(self.logdir):  # a stat per record
                    raise FileNotFoundError(errno.ENOENT, "the log directory vanished", self.logdir)
                write()
                return
            except OSError as exc:  # the writer thread's failure, re-raised here, or "Writer is closed"
                self._failed(exc)
                if attempt or not (reopen and isinstance(exc, FileNotFoundError) and self._reopened(force=True)):
                    break
        self.dropped += 1

    def _failed(self, exc: OSError) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"tb_cnnviz: writing to {self.logdir} failed ({type(exc).__name__}: {exc}); training continues, "
                f"records are dropped until a new event file can be opened (retried every {REOPEN_EVERY_S:.0f} s)",
                StorageFailedWarning,
                stacklevel=4,
            )
        self._abandon_event_file()
        self._failed_at = time.monotonic()

    def _abandon_event_file(self) -> None:
        """Stop the broken file writer, cut a half-written record off its file, and let the writer open a
        fresh file on its next use (``SummaryWriter._get_file_writer`` does when ``file_writer`` is None)."""
        file_writer = getattr(self._writer, "file_writer", None)
        if file_writer is None:
            return
        path = getattr(getattr(file_writer, "event_writer", None), "_file_name", None)
        try:
            file_writer.close()
        except Exception:  # noqa: BLE001 - the writer is broken already; its file is salvaged below
            pass
        self._writer.file_writer = self._writer.all_writers = None
        if path:
            cut_partial_record(path)

    def _reopened(self, force: bool = False) -> bool:
        """Try a fresh event file, at most every :data:`REOPEN_EVERY_S`; whether one is open."""
        if not force and time.monotonic() - self._failed_at < REOPEN_EVERY_S:
            return False
        try:
            self._writer._get_file_writer()  # makes the directory and a new event file
        except OSError:
            self._failed_at = time.monotonic()
            self._writer.file_writer = self._writer.all_writers = None
            return False
        self._failed_at = None
        return True


def _flush_at_exit(sink_ref: weakref.ReferenceType) -> None:
    """Write what is queued, record by record, before the writer thread (a daemon) is stopped mid-record."""
    sink = sink_ref()
    if sink is not None and not sink._closed:
        sink.flush()


_HEADER = struct.Struct("<QI")  # a TFRecord: uint64 length, uint32 its CRC, data, uint32 data CRC


def cut_partial_record(path: str) -> int:
    """Truncate an event file after its last whole record (a full disk can stop a record half way, and a
    reader would stop there); returns the bytes cut. Walks the record headers only."""
    try:
        size = os.path.getsize(path)
        with open(path, "r+b") as file:
            end = 0
            while end + _HEADER.size <= size:
                file.seek(end)
                length, _ = _HEADER.unpack(file.read(_HEADER.size))
                if end + _HEADER.size + length + 4 > size:
                    break
                end += _HEADER.size + length + 4
            if end < size:
                file.truncate(end)
            return size - end
    except OSError:
        return 0


class DiscardingSink:
    """The sink of DDP ranks other than 0: they compute their share of collective views; rank 0 writes."""

    logdir = ""
    dropped = 0

    def add_projector_embedding(self, *args: object) -> None:
        pass

    def write(self, summary: summary_pb2.Summary, step: int) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


#: What a view writes through: the real sink on the writing rank, the discarding one elsewhere.
Sink = Union[SummarySink, DiscardingSink]
