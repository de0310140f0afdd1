"""The README's claims that can be checked mechanically: every repository path it names exists, its "see *X*
above/below" point the right way, and what it says `make demo` does is what the Makefile does."""

from __future__ import annotations

import inspect
import re
import subprocess
from pathlib import Path

from tb_cnnviz import CNNViz
from tb_cnnviz.cli import demo_last_line

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
#: Names in backticks that look like files but are served or written, not kept in the repository.
NOT_FILES = {"modules.json"}


def repository_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / name for name in listed]


def named_paths() -> set[str]:
    """Backticked names and link targets that look like paths or file names (templates like `<view>` left out)."""
    names = set(re.findall(r"`([^`\n]+)`", README)) | set(re.findall(r"\]\(([^)\s]+)\)", README))
    return {name for name in names if re.fullmatch(r"[\w./-]+", name)
            and ("/" in name or re.search(r"\.(py|js|css|md|png|toml|json)$", name))}


def test_every_repository_path_the_readme_names_exists():
    top = {path.name for path in ROOT.iterdir()}
    files = repository_files()
    by_name = {path.name for path in files}
    missing = []
    for name in sorted(named_paths() - NOT_FILES):
        first = name.split("/")[0]
        if "/" in name.rstrip("/") and first in top:  # a path from the repository's root
            if not (ROOT / name).exists():
                missing.append(name)
        elif "/" not in name and name not in by_name:  # a file named alone: it is somewhere in the repository
            missing.append(name)
    assert not missing, f"the README names files that are not in the repository: {missing}"
    assert "tb_cnnviz/methods/activations/filters.py" in named_paths()  # the check does see paths


def test_see_above_and_below_point_the_right_way():
    headings = [(match.start(), match.group(1).strip()) for match in re.finditer(r"^#+ (.+)$", README, re.M)]
    wrong = []
    for match in re.finditer(r"see \*([^*]+)\* (above|below)", README):
        title, way = match.groups()
        places = [start for start, heading in headings if heading.startswith(title)]
        assert places, f"no heading starts with {title!r}"
        if (way == "above") != (places[0] < match.start()):
            wrong.append(f"see *{title}* {way}")
    assert not wrong, wrong


def test_what_the_readme_says_of_make_demo_holds():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^demo:(.*)\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe, "no demo target"
    prerequisite = recipe.group(1).split()[0]
    install = re.search(rf"^\$\(VENV\)/\.{prerequisite.split('-')[0]}-installed:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert prerequisite == "demo-venv" and install and "pip install" in install.group(1)
    assert "[test]" not in install.group(1), "make demo installs the test extras"
    for variable in ("PORT", "LOGDIR"):
        assert f"{variable} ?=" in makefile and f"$({variable})" in recipe.group(2)
        assert f"{variable}=" in README, f"the README does not say that make demo takes {variable}="
    # The demo's last line is true when make starts TensorBoard itself, and says how otherwise.
    assert "--served-at http://127.0.0.1:$(PORT)" in recipe.group(2) and "tensorboard --logdir" in recipe.group(2)
    assert "Now run" not in demo_last_line("runs/demo", "http://127.0.0.1:6006")
    assert "http://127.0.0.1:6006" in demo_last_line("runs/demo", "http://127.0.0.1:6006")
    assert "tensorboard --logdir runs/demo" in demo_last_line("runs/demo", None)


def test_the_readmes_numbers_match_the_defaults():
    """'at most 17 per view by default': keep_steps slot tags plus the latest one."""
    keep = inspect.signature(CNNViz.__init__).parameters["keep_steps"].default
    assert f"at most {keep + 1} per view by default" in README
    assert re.search(rf"`keep_steps` slot tags \({keep} by\s+default\)", README)
