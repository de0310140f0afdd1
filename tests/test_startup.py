"""TensorBoard imports the plugin at start-up: the plugin process must not import torch or torchvision.

Each check runs in a fresh interpreter, since this test process has imported torch long before.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_fresh(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_importing_the_plugin_and_metadata_leaves_torch_out_of_sys_modules() -> None:
    out = run_fresh("""
        import sys
        import tb_cnnviz.plugin, tb_cnnviz.metadata
        print(sorted(m for m in ("torch", "torchvision", "sklearn", "scipy", "openTSNE") if m in sys.modules))
    """)
    assert out.strip() == "[]"


def test_tensorboard_serves_the_tab_without_importing_torch(tmp_path: Path) -> None:
    """TensorBoard's own app, its plugins found through entry points as `tensorboard` finds them, answers
    the plugin listing and the plugin's routes with torch never imported."""
    out = run_fresh(f"""
        import json, sys
        from tensorboard import default, program
        from tensorboard.backend import application
        from werkzeug.test import Client

        tb = program.TensorBoard(plugins=default.get_plugins())
        tb.configure(argv=["tensorboard", "--logdir={tmp_path}", "--load_fast=false"])
        provider, multiplexer = tb._make_data_provider()
        app = application.TensorBoardWSGIApp(tb.flags, tb.plugin_loaders, provider, tb.assets_zip_provider, multiplexer)
        client = Client(app)
        listing = json.loads(client.get("/data/plugins_listing").data)
        runs = client.get("/data/plugin/cnnviz/runs")
        index = client.get("/data/plugin/cnnviz/static/index.js")
        print(json.dumps({{"listed": "cnnviz" in listing, "runs": runs.status_code, "index": index.status_code,
                           "torch": "torch" in sys.modules, "torchvision": "torchvision" in sys.modules}}))
    """)
    assert out.strip().splitlines()[-1] == (
        '{"listed": true, "runs": 200, "index": 200, "torch": false, "torchvision": false}'
    )


def test_the_package_still_resolves_its_public_names_lazily() -> None:
    out = run_fresh("""
        import sys
        import tb_cnnviz
        before = "torch" in sys.modules
        from tb_cnnviz import CNNViz, DeadFilterMonitor, StorageFailedWarning
        print(before, "torch" in sys.modules, CNNViz.__module__, callable(tb_cnnviz.methods.grad_cam), "log_saliency" in dir(CNNViz))
    """)
    assert out.split() == ["False", "True", "tb_cnnviz.logger", "True", "True"]


@pytest.mark.parametrize("name", ["no_such_name", "__path_not__"])
def test_an_unknown_attribute_is_an_attribute_error(name: str) -> None:
    import tb_cnnviz

    with pytest.raises(AttributeError, match=name):
        getattr(tb_cnnviz, name)
