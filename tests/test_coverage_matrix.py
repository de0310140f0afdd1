"""Every view on the CNNs people train (tests/coverage_matrix.py), checked cell by cell against docs/coverage.md.

docs/coverage.md is what ``python tests/coverage_matrix.py --write`` writes: a tick where a view works, else the
reason it is refused. Each model's test runs every view and fails on any cell that differs from the committed
file: a view refused where the file has it work (a regression), refused with another reason than the one stated,
crashing, or working where the file has it refused (the file is stale: run the command). So the committed file
equals what the command would write, checked without writing into the tree. ``CNNVIZ_MATRIX_MODELS=resnet18``
narrows the models while working on one; every model runs in `make test`.
"""

from __future__ import annotations

from pathlib import Path

import os

import pytest

from coverage_matrix import (
    ALL_MODELS,
    COMMAND,
    DOCUMENT,
    MODELS,
    ROOT,
    SLOW,
    VIEWS,
    document,
    images,
    matrix_row,
    parse_document,
)

#: The views every CNN must have, whatever its style: never refused.
ALWAYS = ("activations", "filters", "health", "saliency", "grad_cam", "occlusion", "embedding")
#: Issue 23: receptive fields for any graph, so these hold on every family too.
EVERY_FAMILY = ("top patches", "relevance", "correspondence", "analyze")
#: ``CNNVIZ_MATRIX=full`` also runs the rows left out of make test (coverage_matrix.SLOW) in the per-model tests.
FULL = os.environ.get("CNNVIZ_MATRIX") == "full"
CASES = [pytest.param(s, n, marks=pytest.mark.skipif((s, n) in SLOW and not FULL, reason="left out of make test (coverage_matrix.SLOW): CNNVIZ_MATRIX=full"))
         for s, n in MODELS]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[list, Path]:
    folder = tmp_path_factory.mktemp("folder")
    return images(folder), folder


@pytest.fixture(scope="module")
def committed() -> dict[str, dict[str, str | None]]:
    return parse_document(DOCUMENT.read_text())


def differences(expected: dict[str, str | None], row: dict[str, str | None]) -> dict[str, str]:
    """Each view whose cell differs from the committed one, and how."""
    found = {}
    for view in VIEWS:
        want, got = expected[view], row[view]
        if got is not None and got.startswith("CRASH"):
            found[view] = got
        elif want is None and got is not None:
            found[view] = f"regression: refused ({got})"
        elif want is not None and got is None:
            found[view] = f"works now, docs/coverage.md says refused ({want}): run `{COMMAND}`"
        elif want != got:
            found[view] = f"refused with another reason: {got!r}, stated: {want!r}"
    return found


@pytest.mark.slow
@pytest.mark.parametrize(("source", "name"), CASES, ids=[f"{s}-{n}" for s, n in MODELS])
def test_every_view_works_or_is_refused_with_its_stated_reason(source, name, data, committed, tmp_path):
    images_, folder = data
    model = f"{source} {name}"
    assert model in committed, f"docs/coverage.md has no row for {model}: run `{COMMAND}`"
    row = matrix_row(source, name, images_, folder, tmp_path)
    print(f"\n{model}:", {view: reason for view, reason in row.items() if reason is not None})
    assert differences(committed[model], row) == {}


def test_the_committed_table_is_in_the_command_s_form_and_covers_every_model(committed):
    """Read back and written again, docs/coverage.md is unchanged (the header, the numbering of the notes):
    with the per-model tests above, the file is what the command writes. No model misses a row and no stated
    refusal is a crash, or a refusal of a view every CNN must have."""
    assert list(committed) == [f"{source} {name}" for source, name in ALL_MODELS]
    assert document(committed) == DOCUMENT.read_text(), f"docs/coverage.md is not in the command's form: run `{COMMAND}`"
    for model, row in committed.items():
        assert all(reason is None or len(reason) > 10 for reason in row.values()), (model, row)
        assert not any(reason and reason.startswith("CRASH") for reason in row.values()), (model, row)
        assert all(row[view] is None for view in ALWAYS + EVERY_FAMILY), (model, {view: row[view] for view in ALWAYS + EVERY_FAMILY})


def test_a_changed_cell_fails_whatever_the_kind_of_change():
    """The comparison itself, on hand-made rows: each way a cell can differ is reported, an equal row is not."""
    stated = {view: None for view in VIEWS} | {"top patches": "receptive_field: no rule for function 'eq'"}
    assert differences(stated, dict(stated)) == {}
    for view, got, says in [
        ("filters", "layer 'x' has no weights to show", "regression"),
        ("top patches", "receptive_field: no rule for function 'floordiv'", "another reason"),
        ("top patches", None, "works now"),
        ("saliency", "CRASH RuntimeError: boom", "CRASH"),
    ]:
        found = differences(stated, stated | {view: got})
        assert list(found) == [view] and says in found[view], found


def test_the_readme_shows_the_committed_table():
    table = DOCUMENT.read_text().split("\n\n", 2)[2].strip()  # below the title and the line saying how it is made
    readme = (ROOT / "README.md").read_text()
    shown = readme.split("<!-- coverage:start -->")[-1].split("<!-- coverage:end -->")[0].strip()
    assert shown == table, "README's coverage table differs from docs/coverage.md: copy it in"
