"""Log directories on a file system of TensorBoard's ``gfile`` other than the local one (``s3://bucket/run``):
how to tell them apart, what their failures raise, and whether a failed upload lost anything."""

from __future__ import annotations

from typing import Any


def is_remote(logdir: str) -> bool:
    """``s3://...`` and the like: no local directory to check (TensorBoard's own test, in ``program.py``)."""
    return "://" in logdir


def storage_errors(remote: bool) -> tuple[type[BaseException], ...]:
    """What a failing store raises: ``OSError`` locally; on a remote one also TensorBoard's file-system errors
    and boto3's (connection lost, bucket gone, access denied), whose classes are not ``OSError``."""
    if not remote:
        return (OSError,)
    from tensorboard.compat.tensorflow_stub import errors as gfile_errors

    found: list[type[BaseException]] = [OSError, gfile_errors.OpError]
    try:
        from botocore import exceptions as boto_errors
    except ImportError:  # no boto3 (`pip install 'tb_cnnviz[s3]'`): TensorBoard's S3 file system is off too
        pass
    else:
        found += [boto_errors.BotoCoreError, boto_errors.ClientError]
    return tuple(found)


def writer_thread_alive(writer: Any) -> bool:
    """Whether the event writer's thread of a ``SummaryWriter`` still runs. TensorBoard's S3 file system keeps
    the event file in a local buffer and uploads it whole at every flush, so a failed upload loses nothing while
    that thread lives: the next flush uploads every record. A thread that failed (its own periodic flush) is
    gone with the records it held."""
    async_writer = getattr(getattr(getattr(writer, "file_writer", None), "event_writer", None), "_async_writer", None)
    worker = getattr(async_writer, "_worker", None)
    return worker is not None and worker.is_alive() and getattr(worker, "exception", None) is None
