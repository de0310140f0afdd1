"""The plugin through TensorBoard's real WSGI app, over real event files, with both of its loaders."""

import io
import json
import re
from pathlib import Path
from urllib.parse import quote

import pytest
import torch
from PIL import Image

from tb_cnnviz import CNNViz, metadata

from helpers import QUICK_DEMO, get_json, tensorboard_client

HEALTHY, TOO_HIGH = "healthy_lr0.05", "too_high_lr0.9"
LOGGED_STEPS = list(range(0, QUICK_DEMO["steps"], QUICK_DEMO["log_every"])) + [QUICK_DEMO["steps"] - 1]


def module_path(client) -> str:
    """Where TensorBoard's page imports the tab from: /data/plugin/cnnviz/static/<version>/index.js."""
    return json.loads(client.get("/data/plugins_listing").data)["cnnviz"]["loading_mechanism"]["module_path"]


def test_the_tab_is_listed_as_an_iframe_module(demo_client):
    listing = json.loads(demo_client.get("/data/plugins_listing").data)["cnnviz"]
    assert listing["tab_name"] == "CNNVIZ" and listing["enabled"]
    assert listing["loading_mechanism"]["type"] == "IFRAME"
    version = re.fullmatch(r"/data/plugin/cnnviz/static/([0-9a-f]{12})/index\.js", module_path(demo_client)).group(1)
    reply = demo_client.get(module_path(demo_client))
    assert reply.status_code == 200 and "javascript" in reply.headers["Content-Type"]
    assert b"export" in reply.data and b"render" in reply.data
    # That version's files never change under its URLs: the browser keeps them (a reload asks for none again).
    assert reply.headers["Cache-Control"] == f"private, max-age={365 * 24 * 3600}"
    nested = demo_client.get(f"/data/plugin/cnnviz/static/{version}/views/top_activations.js")
    assert nested.status_code == 200 and "max-age=31536000" in nested.headers["Cache-Control"]
    assert nested.data == demo_client.get("/data/plugin/cnnviz/static/views/top_activations.js").data
    # Any other version (a page opened before the plugin was upgraded), or none, gets today's file, not kept.
    for path in ("0123456789ab/index.js", "index.js"):
        other = demo_client.get(f"/data/plugin/cnnviz/static/{path}")
        assert other.status_code == 200 and other.data == reply.data, path
        assert other.headers["Cache-Control"] == "no-cache, must-revalidate", path
    for path in (f"{version}/no_such.js", f"{version}/../plugin.py", f"{version}", f"{version}/"):
        assert demo_client.get(f"/data/plugin/cnnviz/static/{path}").status_code == 404, path


def test_a_changed_frontend_is_a_new_version(tmp_path):
    """Editing a file of the tab (a new release, or a developer at work) changes the URL its modules load from,
    so a browser never keeps an old module under the new version's URL."""
    import shutil
    from argparse import Namespace

    from tensorboard.plugins import base_plugin

    from tb_cnnviz import plugin as plugin_module

    frontend = tmp_path / "frontend"
    shutil.copytree(plugin_module._frontend_dir(), frontend)
    original = plugin_module._frontend_dir
    plugin_module._frontend_dir = lambda: frontend
    try:
        tab = plugin_module.CNNVizPlugin(base_plugin.TBContext(flags=Namespace(samples_per_plugin={})))
    finally:
        plugin_module._frontend_dir = original
    before = tab.frontend_metadata().es_module_path
    assert tab.frontend_metadata().es_module_path == before  # stable while nothing changes
    (frontend / "views" / "top_activations.js").write_text((frontend / "views" / "top_activations.js").read_text() + "\n// edited\n")
    after = tab.frontend_metadata().es_module_path
    assert after != before and after.endswith("/index.js")


def test_the_entry_module_preloads_every_module_of_the_tab(demo_client):
    """index.js preloads what modules.json lists, beside itself in the versioned folder: every module of the tab
    but index.js and every stylesheet, exactly the folder's files (a module missing would load late, one import
    level at a time; a listed one that is gone would be a 404 in the console)."""
    entry = module_path(demo_client)
    reply = demo_client.get(entry.rsplit("/", 1)[0] + "/modules.json")
    assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("application/json")
    listing = json.loads(reply.data)
    assert listing == json.loads(demo_client.get("/data/plugin/cnnviz/static/modules.json").data)  # unversioned too
    frontend = Path(__file__).resolve().parent.parent / "frontend"
    on_disk = lambda suffix: sorted(path.relative_to(frontend).as_posix() for path in frontend.rglob(f"*{suffix}"))
    assert listing["modules"] == [name for name in on_disk(".js") if name != "index.js"]
    assert listing["stylesheets"] == on_disk(".css") and "style.css" in listing["stylesheets"]
    assert "MODULES" not in demo_client.get(entry).data.decode()  # no hand-kept list left in index.js
    for name in listing["modules"]:  # each served as a module
        reply = demo_client.get(f"/data/plugin/cnnviz/static/{name}")
        assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("text/javascript"), name
    for name in listing["stylesheets"]:
        reply = demo_client.get(f"/data/plugin/cnnviz/static/{name}")
        assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("text/css"), name


def test_runs_list_layers_in_model_order(demo_client):
    status, body = get_json(demo_client, "runs")
    assert status == 200
    runs = {r["run"]: r for r in body["runs"]}
    assert set(runs) == {HEALTHY, TOO_HIGH}
    assert runs[HEALTHY]["activations"] == ["conv1", "relu1", "conv2", "relu2", "conv3", "relu3"]
    assert runs[HEALTHY]["filters"] == ["conv1", "conv2", "conv3"]
    assert runs[HEALTHY]["dead"] == ["relu1", "relu2", "relu3"]


def test_every_logged_step_comes_back_not_only_ten(demo_client):
    status, body = get_json(demo_client, "steps", run=HEALTHY, kind="activations", layer="relu2")
    assert status == 200
    assert [s["step"] for s in body["steps"]] == LOGGED_STEPS and len(LOGGED_STEPS) > 10
    status, body = get_json(demo_client, "dead", run=HEALTHY, layer="relu1")
    assert len(body["steps"]) == QUICK_DEMO["steps"] // QUICK_DEMO["dead_every"] > 10


@pytest.mark.parametrize("kind, layer", [("activations", "relu2"), ("filters", "conv1")])
def test_steps_answer_the_latest_sample_as_sample_does(demo_client, kind, layer):
    status, steps = get_json(demo_client, "steps", run=HEALTHY, kind=kind, layer=layer)
    assert status == 200
    latest = steps["steps"][-1]["step"]
    status, sample = get_json(demo_client, "sample", run=HEALTHY, kind=kind, layer=layer, step=latest)
    assert status == 200 and steps["latest"] == sample and sample["step"] == latest
    status, dead = get_json(demo_client, "steps", run=HEALTHY, kind="dead", layer="relu1")
    assert status == 200 and "latest" not in dead  # a tensor series has no sample


def test_sample_and_image_of_activations(demo_client):
    status, body = get_json(demo_client, "sample", run=HEALTHY, kind="activations", layer="conv2", step=20)
    assert status == 200 and body["step"] == 20 and body["images"] == 4
    meta = body["meta"]
    assert meta["shape"] == [4, 32, 16, 16] and meta["channels_total"] == 32 and meta["labels"] == [0, 1, 2, 3]
    reply = demo_client.get(
        "/data/plugin/cnnviz/image", query_string={"run": HEALTHY, "kind": "activations", "layer": "conv2", "step": 20, "index": 3}
    )
    assert reply.status_code == 200 and reply.headers["Content-Type"] == "image/png"
    assert "max-age=86400" in reply.headers["Cache-Control"]
    tile = meta["tile"]
    assert Image.open(io.BytesIO(reply.data)).size == (
        tile["cols"] * (tile["width"] + tile["gap"]) - tile["gap"],
        tile["rows"] * (tile["height"] + tile["gap"]) - tile["gap"],
    )


def test_blob_keys_of_a_sample_serve_the_same_pictures_as_indices(demo_client):
    _, body = get_json(demo_client, "sample", run=HEALTHY, kind="activations", layer="relu3", step=40)
    assert len(body["blobs"]) == body["images"] == 4
    for index, key in enumerate(body["blobs"]):
        by_key = demo_client.get("/data/plugin/cnnviz/blob", query_string={"run": HEALTHY, "key": key})
        by_index = demo_client.get("/data/plugin/cnnviz/image", query_string={
            "run": HEALTHY, "kind": "activations", "layer": "relu3", "step": 40, "index": index})
        assert by_key.status_code == 200 and by_key.headers["Content-Type"] == "image/png"
        assert "max-age=86400" in by_key.headers["Cache-Control"]
        assert by_key.data == by_index.data
    assert len(set(body["blobs"])) == 4


def test_the_too_high_learning_rate_run_is_flagged_and_the_healthy_one_much_less(demo_client):
    _, high = get_json(demo_client, "dead_summary", run=TOO_HIGH)
    _, healthy = get_json(demo_client, "dead_summary", run=HEALTHY)
    dead_high = sum(len(layer["dead"]) for layer in high["layers"].values())
    dead_healthy = sum(len(layer["dead"]) for layer in healthy["layers"].values())
    assert dead_high >= 20 and dead_healthy <= dead_high / 4
    _, series = get_json(demo_client, "dead", run=TOO_HIGH, layer="relu3")
    assert series["threshold"] == 0.99 and series["channels"] == 64 and len(series["rates"][0]) == 64


def test_the_dead_fraction_is_an_ordinary_scalar_in_the_scalars_tab(demo_client):
    tags = json.loads(demo_client.get("/data/plugin/scalars/tags").data)
    assert "cnnviz/dead_fraction/relu3" in tags[TOO_HIGH] and "loss" in tags[TOO_HIGH]


BAD_REQUESTS = [
    ("steps", {}, 400),
    ("steps", {"run": HEALTHY, "kind": "activations"}, 400),
    ("steps", {"run": HEALTHY, "kind": "bogus", "layer": "conv1"}, 400),
    ("steps", {"run": HEALTHY, "kind": "activations", "layer": ""}, 400),
    ("steps", {"run": HEALTHY, "kind": "activations", "layer": "conv9"}, 404),
    ("steps", {"run": "no such run", "kind": "activations", "layer": "conv1"}, 404),
    ("sample", {"run": HEALTHY, "kind": "activations", "layer": "conv1", "step": "abc"}, 400),
    ("sample", {"run": HEALTHY, "kind": "activations", "layer": "conv1", "step": "1e400"}, 400),
    ("sample", {"run": HEALTHY, "kind": "activations", "layer": "conv1", "step": str(2**70)}, 400),
    ("sample", {"run": HEALTHY, "kind": "activations", "layer": "conv1", "step": "3"}, 404),
    ("sample", {"run": HEALTHY, "kind": "dead", "layer": "relu1", "step": "0"}, 400),
    ("sample", {"run": HEALTHY + "\x00", "kind": "activations", "layer": "conv1", "step": "0"}, 400),
    ("image", {"run": HEALTHY, "kind": "activations", "layer": "conv1", "step": "0", "index": "-1"}, 400),
    ("image", {"run": HEALTHY, "kind": "activations", "layer": "conv1", "step": "0", "index": "4"}, 404),
    ("image", {"run": HEALTHY, "kind": "activations", "layer": "<script>alert(1)</script>", "step": "0", "index": "0"}, 404),
    ("blob", {"run": HEALTHY}, 400),
    ("blob", {"run": HEALTHY, "key": "not a key"}, 400),
    ("blob", {"run": HEALTHY, "key": "eyJ9"}, 400),
    ("blob", {"run": HEALTHY, "key": "../../../etc/passwd"}, 400),
    ("blob", {"run": HEALTHY, "key": "WyJlIiwiY25udml6IiwiaGVhbHRoeV9scjAuMDUiLCJ4IiwxLDFd"}, (400, 404)),  # the Python
    # loader's key format naming no such tag: 404 there; the data server's keys look different: 400
    ("dead", {"run": HEALTHY, "layer": "conv1"}, 404),
    ("dead", {"run": "x" * 5000, "layer": "relu1"}, 400),
    ("dead_summary", {"run": "../../etc/passwd"}, 404),
]


@pytest.mark.parametrize(("route", "params", "status"), BAD_REQUESTS)
def test_bad_parameters_get_a_4xx_with_a_json_message(demo_client, route, params, status):
    got, body = get_json(demo_client, route, **params)
    assert got in (status if isinstance(status, tuple) else (status,)) and isinstance(body["error"], str) and "Traceback" not in body["error"]


def test_a_mistyped_layer_lists_the_layers_there_are(demo_client):
    _, body = get_json(demo_client, "steps", run=HEALTHY, kind="filters", layer="conv4")
    assert "unknown layer 'conv4'" in body["error"] and "layers are: conv1, conv2, conv3" in body["error"]


TRAVERSALS = [
    "../plugin.py", "..%2fplugin.py", "%2e%2e/plugin.py", "..\\plugin.py", "/etc/passwd", "%2fetc%2fpasswd",
    "index.js/../../plugin.py", "....//plugin.py", "index.js%00.css", "", ".", "..", "static/index.js",
    "INDEX.JS", "index.js?x=../../setup.py", "views/../index.js", "views/../../setup.py", "views/%2e%2e/index.js",
    "views", "views/", "./views/top_activations.js", "views//top_activations.js", "VIEWS/top_activations.js",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_static_files_come_from_a_whitelist(demo_client, path):
    reply = demo_client.get("/data/plugin/cnnviz/static/" + path)
    if path.startswith("index.js?"):  # the query string is not part of the name
        assert reply.status_code == 200 and reply.data == demo_client.get("/data/plugin/cnnviz/static/index.js").data
        return
    assert reply.status_code == 404, path
    assert b"import " not in reply.data and b"def " not in reply.data


def test_static_files_in_sub_folders_are_served(demo_client):
    reply = demo_client.get("/data/plugin/cnnviz/static/views/top_activations.js")
    assert reply.status_code == 200 and reply.content_type.startswith("text/javascript")
    assert reply.data == (Path(__file__).resolve().parent.parent / "frontend" / "views" / "top_activations.js").read_bytes()


@pytest.mark.slow  # two more TensorBoard loads of the demo (5 s): outside the quick subset
def test_a_users_own_samples_per_plugin_wins(demo_logdir):
    client = tensorboard_client(demo_logdir, "false", ("--samples_per_plugin=cnnviz=3",))
    _, thinned = get_json(client, "dead", run=HEALTHY, layer="relu1")
    assert len(thinned["steps"]) == 3 and thinned["held_limit"] == 3  # the tab says more may have been logged
    client = tensorboard_client(demo_logdir, "false", ("--samples_per_plugin=cnnviz_pictures=0",))
    _, whole = get_json(client, "dead", run=HEALTHY, layer="relu1")  # our default keeps every flush
    _, steps = get_json(client, "steps", run=HEALTHY, kind="activations", layer="conv1")
    assert len(whole["steps"]) > 3 and whole["held_limit"] is None
    assert len(steps["steps"]) == steps["written"] > 3


@pytest.mark.parametrize("load_fast", ["false", "true"])
@pytest.mark.parametrize("name", ["<img src=x onerror=alert(1)>", '<b title="x">ünï</b>'])
def test_names_with_markup_and_unicode_round_trip_as_text(tmp_path, tiny_net, load_fast, name):
    run = tmp_path / name
    viz = CNNViz(tiny_net, str(run), raise_errors=True)
    viz.log_filters(0)
    viz.close()
    client = tensorboard_client(tmp_path, load_fast)
    _, body = get_json(client, "runs")
    assert [r["run"] for r in body["runs"]] == [name]
    reply = client.get(f"/data/plugin/cnnviz/sample?run={quote(name)}&kind=filters&layer=conv1&step=0")
    if load_fast == "true" and '"' in name:
        # The Rust data server cannot parse back the blob keys it made for such a name: a clear 400, not a 500.
        assert reply.status_code == 400 and "--load_fast=false" in json.loads(reply.data)["error"]
    else:
        assert reply.status_code == 200 and json.loads(reply.data)["run"] == name


@pytest.mark.parametrize("load_fast", ["false", "true"])
def test_the_dead_summary_of_a_run_without_flushes_is_empty_not_missing(tmp_path, tiny_net, load_fast):
    """/dead_summary reads the flushes alone; a run that logged pictures only watched no layer (an empty
    summary), where a run or model with no CNNVIZ data at all is a 404 that says what there is."""
    with CNNViz(tiny_net, str(tmp_path / "pictures"), probe_images=torch.rand(1, 1, 8, 8), raise_errors=True) as viz:
        viz.log_activations(0)
    with CNNViz(tiny_net, str(tmp_path / "watched"), raise_errors=True) as viz:
        viz.watch_dead_filters(every=1)
        tiny_net(torch.rand(2, 1, 8, 8))
        viz.flush_dead_filters(0)
    client = tensorboard_client(tmp_path, load_fast)
    status, body = get_json(client, "dead_summary", run="pictures")
    assert status == 200 and body["layers"] == {}
    status, body = get_json(client, "dead_summary", run="watched")
    assert status == 200 and set(body["layers"]) == {"relu1", "relu2"}
    status, body = get_json(client, "dead_summary", run="pictures", model="gan")
    assert status == 404 and "its models are: ''" in body["error"]
    status, body = get_json(client, "dead_summary", run="nowhere")
    assert status == 404 and "no CNNVIZ data for run 'nowhere'" in body["error"]


def test_data_from_a_newer_format_is_skipped_not_fatal(tmp_path, tiny_net):
    viz = CNNViz(tiny_net, str(tmp_path / "now"), raise_errors=True)
    viz.log_filters(0)
    viz.close()
    from tensorboard.compat.proto import summary_pb2
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "future"))
    future = summary_pb2.SummaryMetadata(data_class=summary_pb2.DATA_CLASS_BLOB_SEQUENCE)
    future.plugin_data.plugin_name = metadata.PLUGIN_NAME
    future.plugin_data.content = json.dumps({"version": 99, "kind": "filters", "layer": "conv1"}).encode()
    value = summary_pb2.Summary.Value(tag="cnnviz/filters/conv1", metadata=future)
    value.tensor.dtype = 7  # DT_STRING
    value.tensor.tensor_shape.dim.add(size=1)
    value.tensor.string_val.append(b"{}")
    writer._get_file_writer().add_summary(summary_pb2.Summary(value=[value]), 0)
    writer.close()
    with pytest.warns(UserWarning, match="format version 99"):
        client = tensorboard_client(tmp_path, "false")
        _, body = get_json(client, "runs")
    assert [r["run"] for r in body["runs"]] == ["now"]
