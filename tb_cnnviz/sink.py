"""Where summaries go: the user's ``SummaryWriter`` (the same event file as their loss curves) or a log
directory of our own, written without TensorFlow; storage failures are survived, never raised into training.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import functools
import itertools
import os
import struct
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterable
from typing import Union

import torch
from tensorboard.compat.proto import event_pb2, summary_pb2

from . import event_checksums, metadata, summary, thinning
from .remote_storage import is_remote, storage_errors, writer_thread_alive


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

    On a remote log directory (``s3://``) there is no directory to check, and an upload that fails while the
    writer's thread lives is retried by the next flush with nothing lost (see :mod:`.remote_storage`).

    ``model`` names the model whose summaries these are (``CNNViz(..., name=...)``): every tag is written
    under it (see :func:`summary.encode`). Two open sinks of this process never write the same name
    to one log directory: the second one takes a distinct name, with a warning. ``purge_step`` marks a run
    resumed from a checkpoint (see :meth:`_mark_restart`).

    Each picture series (one kind of one layer) is spread over ``keep_steps`` slot tags and a latest one (see
    :mod:`.thinning`), so that TensorBoard holds an even grid of at most ``keep_steps + 1`` of its calls however
    long the run; ``keep_steps=None`` writes every call under one tag, as TensorBoard's own plugins do.
    """

    def __init__(self, writer_or_logdir: object, model: str | None = None, model_type: str = "model",
                 purge_step: int | None = None, keep_steps: int | None = thinning.DEFAULT_KEEP):
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
        self._remote = is_remote(self.logdir)
        self._storage_errors = storage_errors(self._remote)
        self._directory = self.logdir if self._remote else os.path.abspath(self.logdir)
        self.model = _claim_name(self._directory, model, model_type)  #: the name written in every tag
        self._release_name = weakref.finalize(self, _NAMES[self._directory].discard, self.model)  # also if never closed
        self.dropped = 0  #: records lost to storage failures
        self._failed_at: float | None = None  # monotonic time of the last failure while no file is open
        self._warned = False
        self._closed = False
        self._at_exit = functools.partial(_flush_at_exit, weakref.ref(self))
        atexit.register(self._at_exit)
        self._keep_steps = thinning.check_keep(keep_steps) if keep_steps is not None else None  # fails here
        self._series: dict[str, thinning.SeriesThinning] = {}
        self._lock = threading.RLock()  # autolog's worker thread writes beside the training thread
        self._session = f"r{purge_step}." if purge_step is not None else ""  # a resumed run thins apart
        if purge_step is not None:
            self._mark_restart(purge_step)

    @property
    def logdir(self) -> str:
        return self._writer.get_logdir()

    def add_projector_embedding(self, codes: torch.Tensor, labels: list, thumbnails: torch.Tensor, step: int, name: str) -> None:
        """The codes for TensorBoard's own Projector, as ``SummaryWriter.add_embedding`` writes them, tagged
        ``cnnviz/<name>`` (``cnnviz.<model>/<name>``)."""
        tag = f"{metadata.tag_prefix(self.model)}/{name}"
        with self._lock:
            self._guarded(lambda: self._writer.add_embedding(
                codes, metadata=labels, label_img=thumbnails.float() / 255, global_step=int(step), tag=tag))

    def write(self, records: Iterable[summary.Record], step: int) -> None:
        """Encode a view's records at ``step`` under this sink's model, each once, and write them as one event.
        A picture record goes to its series' slot tag (see :mod:`.thinning`), stamped with its call's index."""
        with self._lock:
            values = [self._encode(record) for record in records]
            if values:
                event = summary_pb2.Summary(value=values)
                self._guarded(lambda: self._writer._get_file_writer().add_summary(event, global_step=int(step),
                                                                                 walltime=time.time()))

    def _encode(self, record: summary.Record) -> summary_pb2.Summary.Value:
        if self._keep_steps is None or not isinstance(record, summary.Pictures):
            return summary.encode(record, self.model)
        tag = metadata.tag(record.kind, record.name, self.model)
        series = self._series.get(tag)
        if series is None:
            series = self._series[tag] = thinning.SeriesThinning(self._keep_steps)
        index = series.calls
        return summary.encode(record, self.model, tag=thinning.slot_tag(tag, series.place(), self._session),
                              plugin_name=metadata.PICTURES_PLUGIN_NAME, series_index=index)

    def _mark_restart(self, step: int) -> None:
        """Write TensorBoard's restart marker at ``step`` (a ``SessionLog.START``, as PyTorch's
        ``SummaryWriter(purge_step=...)`` does), so that its Python loader hides what a dead process logged at
        or after ``step``. Written twice: that loader takes the first START of a run for a start, not a restart.
        Once per log directory and step in this process, so a second CNNViz purges nothing the first wrote."""
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"purge_step must be a non-negative int (the step training resumes at); got {step!r}")
        if (self._directory, step) in _RESTARTS:
            return
        _RESTARTS.add((self._directory, step))
        marker = event_pb2.Event(step=step, session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START))
        for _ in range(2):
            marker.wall_time = time.time()
            self._guarded(lambda: self._writer._get_file_writer().add_event(marker))

    def flush(self) -> None:
        with self._lock:
            self._guarded(self._writer.flush)

    def close(self) -> None:
        """Flush; close the writer only if we opened it (the user's own writer stays theirs)."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._at_exit)
        self._release_name()  # the name is free for a later CNNViz
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
                if reopen and not self._remote and not os.path.isdir(self.logdir):  # a stat per record
                    raise FileNotFoundError(errno.ENOENT, "the log directory vanished", self.logdir)
                write()
                return
            except self._storage_errors as exc:  # the writer thread's failure, re-raised here, or "Writer is closed"
                if self._remote and writer_thread_alive(self._writer):
                    self._warn(exc, kept=True)  # an upload failed; the writer still holds every record
                    return
                self._failed(exc)
                if attempt or not (reopen and isinstance(exc, FileNotFoundError) and self._reopened(force=True)):
                    break
        self.dropped += 1

    def _failed(self, exc: BaseException) -> None:
        self._warn(exc)
        self._abandon_event_file()
        self._failed_at = time.monotonic()

    def _warn(self, exc: BaseException, kept: bool = False) -> None:
        """Warn once. ``kept``: an upload to a remote log directory failed while its writer still holds every
        record, so nothing is lost and the next flush uploads them again."""
        if not self._warned:
            self._warned = True
            outcome = ("nothing is lost: the writer keeps every record and the next flush uploads them again" if kept
                       else "records are dropped until a new event file can be opened "
                            f"(retried every {REOPEN_EVERY_S:.0f} s)")
            warnings.warn(
                f"tb_cnnviz: writing to {self.logdir} failed ({type(exc).__name__}: {exc}); training continues, "
                f"{outcome}",
                StorageFailedWarning,
                stacklevel=5,
            )

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
        if path and not self._remote:  # an object store replaces the whole object at each upload: nothing to cut
            cut_partial_record(path)

    def _reopened(self, force: bool = False) -> bool:
        """Try a fresh event file, at most every :data:`REOPEN_EVERY_S`; whether one is open."""
        if not force and time.monotonic() - self._failed_at < REOPEN_EVERY_S:
            return False
        try:
            self._writer._get_file_writer()  # makes the directory and a new event file
        except self._storage_errors:
            self._failed_at = time.monotonic()
            self._writer.file_writer = self._writer.all_writers = None
            return False
        self._failed_at = None
        return True


#: Log directory -> the model names open sinks of this process write to it ("" is the unnamed model).
_NAMES: dict[str, set[str]] = {}
#: (log directory, step) of every restart marker this process wrote.
_RESTARTS: set[tuple[str, int]] = set()


def _claim_name(directory: str, wanted: str | None, model_type: str) -> str:
    """``wanted`` ("" if None) unless an open sink already writes it to ``directory``; else, with one warning, a
    distinct name made from ``wanted`` or the model's class, so that no instance writes over another."""
    taken = _NAMES.setdefault(directory, set())
    name = wanted or ""
    if name in taken:
        base = wanted or model_type
        name = next(n for n in itertools.chain([base], (f"{base}_{i}" for i in itertools.count(2))) if n not in taken)
        already = f"model {wanted!r}" if wanted else "an unnamed model"
        warnings.warn(
            f"tb_cnnviz: another CNNViz already writes {already} to {directory}; this one writes as {name!r} "
            "so as not to overwrite it. Give each CNNViz of a run its own name=... (e.g. 'generator', "
            "'discriminator'), or close() the first one before making another.",
            UserWarning,
            stacklevel=4,
        )
    taken.add(name)
    return name


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

    def __init__(self, model: str | None = None) -> None:
        self.model = model or ""

    def add_projector_embedding(self, *args: object) -> None:
        pass

    def write(self, records: Iterable[summary.Record], step: int) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


#: What a view writes through: the real sink on the writing rank, the discarding one elsewhere.
Sink = Union[SummarySink, DiscardingSink]
