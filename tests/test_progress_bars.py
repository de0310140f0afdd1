"""Progress bars follow tqdm's own rules: ``TQDM_DISABLE=1`` silences every bar the library draws, output that
is not a terminal (CI, ``nohup``) gets none, and ``progress=True`` draws them anyway.

Each case runs the three kinds of bars (a streamed pass over data, occlusion, an input optimisation) in a child
process, because tqdm reads its ``TQDM_*`` variables when it is imported. ``TQDM_DELAY=0`` (honoured like
``TQDM_DISABLE``) makes the bars appear at once instead of after two seconds; the control case on a terminal
shows that the bars do appear, so the silent cases can fail.
"""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import re
import subprocess
import sys
import termios
import textwrap
from pathlib import Path

import pytest

# Each test runs a child Python on a pseudo-terminal (about 6 s): outside the quick subset.
pytestmark = [pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal"), pytest.mark.slow]

CHILD = textwrap.dedent("""
    import sys
    import torch
    from torch import nn
    from tb_cnnviz import methods

    show = {"none": None, "true": True}[sys.argv[1]]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 3))
    images = torch.rand(2, 3, 16, 16)
    data = [(images, torch.tensor([0, 1]))] * 3
    methods.top_activations(model, data, "1", k=2, progress=show)             # streamed pass
    methods.occlusion(model, images, target=0, window=4, stride=4, progress=show)  # occlusion
    methods.invert(model, images[:1], "1", steps=3, progress=show)             # input optimisation
    print("done", flush=True)
""")

#: What a tqdm bar of each kind writes: its description, then the count or the percentage.
BARS = {"streamed": re.compile(r"top activations of 1: "), "occlusion": re.compile(r"occlusion: "),
        "optimisation": re.compile(r"inverting 1: ")}


def _run(tmp_path: Path, show: str, terminal: bool, **env: str) -> str:
    """The child's stderr (where tqdm writes), on a pseudo-terminal or a pipe."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TQDM_")}
    environ.update(PYTHONPATH=str(Path(__file__).resolve().parents[1]), TQDM_DELAY="0", **env)
    if not terminal:
        done = subprocess.run([sys.executable, str(script), show], env=environ, capture_output=True, timeout=300)
        assert done.returncode == 0, done.stderr.decode()
        return done.stderr.decode()
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # tqdm draws nothing 0 wide
    child = subprocess.Popen([sys.executable, str(script), show], env=environ, stdout=subprocess.PIPE,
                             stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert child.wait(timeout=300) == 0, b"".join(chunks).decode(errors="replace")
    assert child.stdout.read().strip() == b"done"
    return b"".join(chunks).decode(errors="replace")


def _bars(output: str) -> set[str]:
    return {kind for kind, pattern in BARS.items() if pattern.search(output)}


def test_bars_show_on_a_terminal_by_default(tmp_path):
    """The control: with no variable set, a terminal gets every bar (so the cases below can fail)."""
    assert _bars(_run(tmp_path, "none", terminal=True)) == set(BARS)


def test_tqdm_disable_silences_every_bar(tmp_path):
    output = _run(tmp_path, "none", terminal=True, TQDM_DISABLE="1")
    assert _bars(output) == set(), output


def test_no_bars_when_the_output_is_not_a_terminal(tmp_path):
    output = _run(tmp_path, "none", terminal=False)
    assert _bars(output) == set(), output


def test_progress_true_draws_every_bar_anyway(tmp_path):
    assert _bars(_run(tmp_path, "true", terminal=False, TQDM_DISABLE="1")) == set(BARS)
