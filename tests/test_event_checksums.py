"""The C checksum gives TensorBoard's own masked CRC-32C, and event files written with it read back."""

import os

import pytest
import torch
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.compat.tensorflow_stub import errors, pywrap_tensorflow

from tb_cnnviz import CNNViz, event_checksums


@pytest.mark.parametrize("size", [0, 1, 7, 64, 4099])
def test_same_masked_checksum_as_tensorboards_pure_python_one(size):
    data = os.urandom(size)
    assert event_checksums.masked_crc32c(data) == pywrap_tensorflow.masked_crc32c(data)


def test_records_pass_tensorboards_checksum_verification(tmp_path, tiny_net):
    assert event_checksums.install()
    with CNNViz(tiny_net, str(tmp_path), probe_images=torch.rand(2, 1, 16, 16), raise_errors=True) as viz:
        viz.log_activations(0)
    (path,) = tmp_path.glob("events.out.tfevents.*")
    # TensorBoard's Python reader recomputes every record's CRC and raises DataLossError on a mismatch.
    reader = pywrap_tensorflow.PyRecordReader_New(str(path))
    records = 0
    while True:
        try:
            reader.GetNext()
        except errors.OutOfRangeError:  # the end of the file; a bad checksum is a DataLossError
            break
        records += 1
    assert records > 1
    tags = {v.tag for e in event_file_loader.EventFileLoader(str(path)).Load() for v in e.summary.value}
    assert any(tag.startswith("cnnviz/activations/") for tag in tags)
