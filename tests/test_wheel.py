"""The wheel carries the tab: installed non-editable into a fresh venv, tensorboard serves it from there."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_ships_the_frontend_and_tensorboard_serves_it(tmp_path, demo_logdir):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--no-build-isolation", "-w", str(wheels), str(ROOT)],
        check=True,
    )
    (wheel,) = wheels.glob("tb_cnnviz-*.whl")

    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    fresh_site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    # torch, tensorboard & co. come from the test venv's site-packages (a path, so its .pth files, among them
    # the editable install of tb_cnnviz, are not processed); tb_cnnviz itself only from the wheel.
    (fresh_site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--quiet", str(wheel)], check=True)

    # Every file of the tab, those in views/ too: the wheel must carry them and the static route serve them.
    names = sorted(path.relative_to(ROOT / "frontend").as_posix() for path in (ROOT / "frontend").rglob("*") if path.is_file())
    assert "views/top_activations.js" in names and "views/top_activations.css" in names
    probe = textwrap.dedent(
        f"""
        import json, sys, time
        import tb_cnnviz
        assert tb_cnnviz.__file__.startswith({str(venv)!r}), tb_cnnviz.__file__
        from werkzeug.test import Client
        from tensorboard import default, program
        from tensorboard.backend import application
        tb = program.TensorBoard(plugins=default.get_plugins())
        tb.configure(argv=["tensorboard", "--logdir={demo_logdir}", "--load_fast=false"])
        provider, mux = tb._make_data_provider()
        client = Client(application.TensorBoardWSGIApp(tb.flags, tb.plugin_loaders, provider, tb.assets_zip_provider, mux))
        assert "cnnviz" in json.loads(client.get("/data/plugins_listing").data)
        for name in {names!r}:
            reply = client.get("/data/plugin/cnnviz/static/" + name)
            assert reply.status_code == 200, name
            sys.stdout.buffer.write(reply.data)
        """
    )
    result = subprocess.run([str(python), "-c", probe], capture_output=True, cwd=tmp_path)  # not the source tree
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    served = result.stdout
    shipped = b"".join((ROOT / "frontend" / name).read_bytes() for name in names)
    assert served == shipped
