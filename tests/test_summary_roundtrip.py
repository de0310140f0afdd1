"""What the logging API writes, read back through TensorBoard's own event reader."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.compat.proto import summary_pb2
from torch.utils.tensorboard import SummaryWriter

from tb_cnnviz import CNNViz, metadata
from tb_cnnviz.thinning import slot_tag


def load(logdir):
    acc = event_accumulator.EventAccumulator(str(logdir), size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    return acc


def first_call_tag(kind, layer):
    """The first call of a picture series goes to its slot 0 (see tb_cnnviz.thinning)."""
    return slot_tag(metadata.tag(kind, layer), "0")


def blobs(acc, tag, index=-1):
    return acc.Tensors(tag)[index].tensor_proto.string_val


def test_activations_are_pngs_whose_tiles_are_the_normalised_channels(tiny_net, tmp_path):
    torch.manual_seed(7)
    x = torch.rand(2, 1, 6, 6)
    writer = SummaryWriter(str(tmp_path))
    writer.add_scalar("loss", 1.0, 0)
    viz = CNNViz(tiny_net, writer, probe_images=x, probe_labels=[3, 5], raise_errors=True)
    viz.log_activations(step=7)
    viz.close()
    writer.close()

    acc = load(tmp_path)
    tag = first_call_tag("activations", "conv1")
    meta_proto = acc.SummaryMetadata(tag)
    assert meta_proto.plugin_data.plugin_name == metadata.PICTURES_PLUGIN_NAME
    assert meta_proto.data_class == summary_pb2.DATA_CLASS_BLOB_SEQUENCE
    content = metadata.parse_plugin_content(meta_proto.plugin_data.content)
    assert (content.kind, content.layer, content.version, content.model) == ("activations", "conv1", 1, "")  # unnamed: format 1
    assert acc.Scalars("loss")  # the user's own data shares the event file

    meta_blob, *pngs = blobs(acc, tag)
    meta = json.loads(meta_blob)
    assert acc.Tensors(tag)[-1].step == 7 and len(pngs) == 2 and meta["labels"] == [3, 5]
    assert meta["call"] == 1 and meta["series_index"] == 0  # the module's first call; the series' first

    with torch.no_grad():
        expected = tiny_net.conv1(x)
    tile = meta["tile"]
    for n, png in enumerate(pngs):
        picture = np.asarray(Image.open(io.BytesIO(png)))
        for i, channel in enumerate(meta["channels"]):
            r, c = divmod(i, tile["cols"])
            y0, x0 = r * (tile["height"] + tile["gap"]), c * (tile["width"] + tile["gap"])
            got = picture[y0 : y0 + tile["height"], x0 : x0 + tile["width"]].astype(float)
            lo, hi = meta["scale"][i]
            want = np.clip((expected[n, channel].numpy() - lo) / (hi - lo), 0, 1) * 255
            np.testing.assert_allclose(got, want, atol=1.01)  # 8-bit rounding (and 4-digit scale in JSON)


def test_filters_and_dead_rates_round_trip(hand_net, tmp_path):
    tiny_net = hand_net
    viz = CNNViz(tiny_net, str(tmp_path), raise_errors=True)
    viz.watch_dead_filters(every=1)
    viz.log_filters(step=0)
    tiny_net(torch.rand(4, 1, 6, 6))
    viz.step(0)
    viz.close()

    acc = load(tmp_path)
    meta = json.loads(blobs(acc, first_call_tag("filters", "conv2"))[0])
    assert meta["shape"] == [4, 3, 3, 3] and meta["mode"] == "per_input" and meta["inputs"] == [0, 1, 2]
    assert json.loads(blobs(acc, first_call_tag("filters", "conv1"))[0])["mode"] == "per_input"  # 1 input channel
    assert len(meta["noise"]) == 4 and all(0 <= s <= 1 for s in meta["noise"])
    dead_tag = metadata.tag("dead", "relu1")
    assert acc.SummaryMetadata(dead_tag).data_class == summary_pb2.DATA_CLASS_TENSOR
    rates = np.frombuffer(acc.Tensors(dead_tag)[0].tensor_proto.tensor_content, dtype=np.float32)
    assert rates[1] == 1.0
    assert acc.Scalars("cnnviz/dead_fraction/relu1")[0].value == pytest.approx(1 / 3)


def test_first_layer_filters_are_rgb_tiles_centred_on_grey(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 2, bias=False), torch.nn.ReLU(), torch.nn.Conv2d(2, 3, 1), torch.nn.Conv2d(3, 1, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[[[1.0, -1.0], [0.0, 0.5]]] * 3, [[[0.0, 0.0], [0.0, 2.0]]] * 3]))
    viz = CNNViz(net, tmp_path, raise_errors=True)
    viz.log_filters(0)
    viz.close()
    meta_blob, png = blobs(load(tmp_path), first_call_tag("filters", "0"))
    meta = json.loads(meta_blob)
    assert meta["mode"] == "rgb" and meta["scale"] == [1.0, 2.0]
    later = json.loads(blobs(load(tmp_path), first_call_tag("filters", "3"))[0])
    assert later["mode"] == "per_input"  # 3 input channels, but not the image's colours
    picture = np.asarray(Image.open(io.BytesIO(png)))
    assert picture.shape == (2, 5, 3)  # two 2x2 tiles side by side, one gap column
    assert picture[0, 0].tolist() == [255] * 3 and picture[0, 1].tolist() == [0] * 3 and picture[1, 0].tolist() == [128] * 3
    assert picture[1, 4].tolist() == [255] * 3  # filter 1 scaled by its own max |w| = 2


def test_newer_format_versions_are_skipped_with_one_warning():
    content = json.dumps({"version": metadata.FORMAT_VERSION + 1, "kind": "activations", "layer": "x"}).encode()
    with pytest.warns(UserWarning, match="format version"):
        assert metadata.parse_plugin_content(content) is None
    assert metadata.parse_plugin_content(b"not json") is None


def test_json_floats_are_rounded_to_4_significant_digits_as_formatting_them_would():
    """The vectorised rounding against the plain reference: each float formatted with ``.4g`` and parsed back,
    non-finite ones as null, integers, booleans and ragged or mixed lists left to the element-wise path."""
    from tb_cnnviz.summary import json_blob

    def reference(values):
        if isinstance(values, dict):
            return {k: reference(v) for k, v in values.items()}
        if isinstance(values, list):
            return [reference(v) for v in values]
        if isinstance(values, float):
            return float(f"{values:.4g}") if np.isfinite(values) else None
        return values

    generator = np.random.default_rng(0)
    magnitudes = 10.0 ** generator.integers(-18, 18, size=(64, 3))
    payload = {
        "nested": (generator.normal(size=(64, 3)) * magnitudes).tolist(),
        "flat": generator.random(100).tolist(),
        "with_nan": [0.5] * 8 + [float("nan"), float("inf")],
        "tiny": [1e-30, 2.5e-25, 3.0] * 3,
        "ints": list(range(20)),
        "bools": [True, False] * 5,
        "ragged": [[0.123456, 2.0], [3.0]],
        "mixed": [1.23456, None, "x"] * 3,
    }
    assert json.loads(json_blob(payload)) == reference(payload)


@pytest.mark.parametrize("load_fast", ["false", "true"])
@pytest.mark.parametrize("former, stem", [("top", "top_activations"), ("class_model", "class_models"),
                                          ("channel_vis", "channel_images")])
def test_a_renamed_view_reads_files_written_under_its_former_kind(tmp_path, load_fast, former, stem):
    """Files written before a view's rename carry its former kind: listed and served as the view's stem, and a
    link that asks for the former kind still answers."""
    from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2, types_pb2

    from tests.helpers import get_json, tensorboard_client

    png = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 10)).save(png, format="PNG")
    blobs = [json.dumps({"kind": former, "layer": "conv1"}).encode(), png.getvalue()]
    content = json.dumps({"version": 1, "kind": former, "layer": "conv1", "order": 0}).encode()  # as written then
    value = summary_pb2.Summary.Value(
        tag=f"cnnviz/{former}/conv1",
        metadata=summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="cnnviz", content=content),
            data_class=summary_pb2.DATA_CLASS_BLOB_SEQUENCE),
        tensor=tensor_pb2.TensorProto(
            dtype=types_pb2.DT_STRING, string_val=blobs,
            tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=2)])))
    writer = SummaryWriter(str(tmp_path / "old"))
    writer._get_file_writer().add_summary(summary_pb2.Summary(value=[value]), global_step=3)
    writer.close()

    client = tensorboard_client(tmp_path, load_fast)
    _, runs = get_json(client, "runs")
    entry = runs["runs"][0]
    assert entry[stem] == ["conv1"] and former not in entry
    for asked in (stem, former):
        status, sample = get_json(client, "sample", run="old", kind=asked, layer="conv1", step=3)
        assert status == 200 and sample["kind"] == stem and sample["images"] == 1
