"""The "Where it fails" view over 1000 classes (issue 16), in real Chromium against a real `tensorboard`: the most
confused pairs as a ranked list where the matrix is too big to draw, the per-class table sorted by a clicked
column and searched by name, and the line naming the classes that got a PR curve. What the page shows is checked
against the logged meta read through the plugin's HTTP route, and the PR-curve line against the tags of
TensorBoard's own PR Curves plugin."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest
import torch
from playwright.sync_api import expect
from torch import nn

from helpers import fetch, tensorboard_process
from test_browser import DOCS, browser, open_tab  # noqa: F401 (the module-scoped Chromium fixture)
from tb_cnnviz import CNNViz

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RUN, DATA_SET, STEP, CLASSES = "imagenet_like", "val", 5, 1000
NAMES = [f"class {i:04d}" for i in range(CLASSES)]
NAMES[7] = "Tabby Cat"  # the most frequent class
NAMES[913] = "Great White Shark"
TABLE_ROWS = 100  # performance.js draws this many rows at first


@pytest.fixture(scope="module")
def many_classes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict]]:
    """A tiny net with a 1000-way head on random 2x2 images: half the labels random (class 7 ten times as
    frequent), half the net's own answer, so accuracy differs between classes. Yields (url, the logged meta)."""
    logdir = tmp_path_factory.mktemp("many_classes")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, CLASSES))
    images = torch.randn(600, 3, 2, 2)
    with torch.no_grad():
        predicted = model(images).argmax(dim=1)
    labels = torch.randint(0, CLASSES, (600,))
    labels[:60] = 7
    labels[300:] = predicted[300:]
    with CNNViz(model, str(logdir / RUN), raise_errors=True) as viz:
        viz.log_performance([(images[i : i + 200], labels[i : i + 200]) for i in range(0, 600, 200)], STEP,
                            class_names=NAMES, name=DATA_SET)
    with tensorboard_process(logdir, ready=RUN.encode()) as url:
        sample = json.loads(fetch(url, "sample", {"run": RUN, "kind": "performance", "layer": DATA_SET, "step": STEP}))
        yield url, sample["meta"]


def open_view(browser, url: str, problems: list[str]):  # noqa: F811
    page, frame = open_tab(browser, url, problems, ready=".run-toggle")  # the run has no activations
    frame.locator("button.view-button[data-view='performance']").click()
    column = frame.locator(f".run-column[data-run='{RUN}']")
    expect(column.locator(".performance-view")).to_have_count(1)
    return page, frame, column


def shown_classes(column) -> list[int]:
    return column.locator(".class-table tbody tr").evaluate_all("rows => rows.map(r => Number(r.dataset.class))")


def test_the_most_confused_pairs_are_ranked_where_the_matrix_is_too_big(browser, many_classes):  # noqa: F811
    url, meta = many_classes
    assert meta["confusion"] is None and meta["classes"] == CLASSES
    pairs = meta["confused_pairs"]
    assert len(pairs) == 50 and pairs[0]["count"] > 1
    problems: list[str] = []
    page, frame, column = open_view(browser, url, problems)
    expect(column.locator(".confusion-cell")).to_have_count(0)
    rows = column.locator(".confused-pair")
    expect(rows).to_have_count(len(pairs))
    shown = rows.evaluate_all("els => els.map(e => [Number(e.dataset.true), Number(e.dataset.predicted), Number(e.dataset.count)])")
    assert shown == [[pair["true"], pair["predicted"], pair["count"]] for pair in pairs]
    for rank in (0, len(pairs) - 1):
        pair = pairs[rank]
        true, predicted = NAMES[pair["true"]], NAMES[pair["predicted"]]
        expect(rows.nth(rank)).to_have_text(
            f"{rank + 1}.{true} → {predicted}{pair['count']} example{'s' if pair['count'] > 1 else ''}"
            f"{100 * pair['share']:.1f}% of {true}")
    page.screenshot(path=str(DOCS / "screenshot-many-classes.png"))  # for the README
    rows.first.click()
    expect(column.locator(".confusion-examples")).to_contain_text(f"true {NAMES[pairs[0]['true']]} → predicted {NAMES[pairs[0]['predicted']]}")
    assert [p for p in problems if "cnnviz" in p or "page error" in p] == []
    page.close()


def test_the_per_class_table_sorts_by_a_clicked_column_and_finds_a_class_by_name(browser, many_classes):  # noqa: F811
    url, meta = many_classes
    support, accuracy = meta["per_class"]["support"], meta["per_class"]["accuracy"]
    precision, predicted = meta["per_class"]["precision"], meta["predicted_count"]
    assert len(set(accuracy[c] for c in range(CLASSES) if support[c])) > 2  # something to sort
    problems: list[str] = []
    page, frame, column = open_view(browser, url, problems)
    expect(column.locator(".class-bar-row")).to_have_count(0)  # the bars are for a few classes only
    table = column.locator(".class-table")
    expect(table.locator("tbody tr")).to_have_count(TABLE_ROWS)
    expect(column.locator(".class-table-count")).to_have_text(f"{CLASSES} classes, {TABLE_ROWS} shown")

    # By default worst first; a class without examples has no accuracy and comes last; ties: more examples first.
    expect(table.locator("th[data-key='accuracy']")).to_have_attribute("aria-sort", "ascending")
    worst_first = sorted(range(CLASSES), key=lambda c: (support[c] == 0, accuracy[c], -support[c], c))
    assert worst_first[0] == 7 and accuracy[7] == 0
    assert shown_classes(column) == worst_first[:TABLE_ROWS]

    table.locator("th[data-key='support'] button").click()
    expect(table.locator("th[data-key='support']")).to_have_attribute("aria-sort", "descending")
    expect(table.locator("th[data-key='accuracy']")).to_have_attribute("aria-sort", "none")
    assert shown_classes(column) == sorted(range(CLASSES), key=lambda c: (-support[c], c))[:TABLE_ROWS]
    first = table.locator("tbody tr").first
    expect(first.locator(".cell-name")).to_contain_text("Tabby Cat")
    expect(first.locator(".cell-support")).to_have_text(str(support[7]))
    expect(first.locator(".cell-accuracy")).to_have_text(f"{100 * accuracy[7]:.1f}%")

    table.locator("th[data-key='support'] button").click()  # again: the other way
    expect(table.locator("th[data-key='support']")).to_have_attribute("aria-sort", "ascending")
    assert shown_classes(column) == sorted(range(CLASSES), key=lambda c: (support[c], c))[:TABLE_ROWS]

    table.locator("th[data-key='precision'] button").click()
    expect(table.locator("th[data-key='precision']")).to_have_attribute("aria-sort", "ascending")
    assert shown_classes(column) == sorted(range(CLASSES), key=lambda c: (predicted[c] == 0, precision[c], -support[c], c))[:TABLE_ROWS]

    table.locator("th[data-key='name'] button").click()
    assert shown_classes(column) == sorted(range(CLASSES), key=lambda c: NAMES[c].lower())[:TABLE_ROWS]

    column.locator(".class-table-more").click()  # more rows on demand
    expect(table.locator("tbody tr")).to_have_count(TABLE_ROWS * 6)

    search = column.locator(".class-search")
    search.fill("tabby")  # any case, anywhere in the name
    expect(table.locator("tbody tr")).to_have_count(1)
    assert shown_classes(column) == [7]
    expect(column.locator(".class-table-count")).to_have_text(f"1 of {CLASSES} classes match")
    search.fill("WHITE SHARK")  # far down the table in this order: the search covers every class
    assert shown_classes(column) == [913]
    search.fill("class 09")
    wanted = sorted((c for c in range(CLASSES) if "class 09" in NAMES[c]), key=lambda c: NAMES[c].lower())
    assert len(wanted) == 99
    expect(table.locator("tbody tr")).to_have_count(len(wanted))
    assert shown_classes(column) == wanted
    search.fill("no such class")
    expect(table.locator("tbody tr")).to_have_count(0)
    expect(column.locator(".class-table-count")).to_have_text(f"0 of {CLASSES} classes match")
    assert [p for p in problems if "cnnviz" in p or "page error" in p] == []
    page.close()


def test_the_pr_curve_line_names_the_classes_that_got_a_curve_and_why(browser, many_classes):  # noqa: F811
    url, meta = many_classes
    chosen = meta["pr_curves"]
    assert chosen["of"] == CLASSES and chosen["micro"] is True and len(chosen["classes"]) == 20
    assert 7 in chosen["classes"]  # 60 examples, hardly any right: the first of the worst (ties: more examples first)
    why_7 = "worst by accuracy" if 7 in chosen["worst"] else "most frequent"
    with urllib.request.urlopen(f"{url}/data/plugin/pr_curves/tags", timeout=10) as reply:
        tags = json.loads(reply.read())[RUN]
    # TensorBoard's PR Curves tab has exactly the classes the meta names, and the micro-average.
    assert sorted(tags) == sorted([f"cnnviz/pr_curve/{DATA_SET}/{c}/pr_curves" for c in chosen["classes"]]
                                  + [f"cnnviz/pr_curve/{DATA_SET}/micro/pr_curves"])
    problems: list[str] = []
    page, frame, column = open_view(browser, url, problems)
    line = column.locator(".pr-curves-note")
    for why in ("worst", "most_frequent"):
        named = line.locator(f".pr-class[data-why='{why}']")
        expect(named).to_have_count(len(chosen[why]))
        assert named.evaluate_all("els => els.map(e => Number(e.dataset.class))") == chosen[why]
        assert named.evaluate_all("els => els.map(e => e.textContent)") == [NAMES[c] for c in chosen[why]]
    first = [NAMES[c] for c in (chosen["worst"][0], chosen["most_frequent"][0])]
    expect(line).to_contain_text(f"20 of {CLASSES} classes, the 10 worst by accuracy ({first[0]}, ")
    expect(line).to_contain_text(f"and the 10 most frequent ({first[1]}, ")
    expect(line).to_contain_text(f"plus the micro-average over all {CLASSES} (cnnviz/pr_curve/{DATA_SET}/micro).")
    # The table marks the same classes.
    column.locator(".class-search").fill("Tabby")
    expect(column.locator(".class-table tbody tr .pr-mark")).to_have_attribute(
        "title", f"has a PR curve ({why_7})")
    assert [p for p in problems if "cnnviz" in p or "page error" in p] == []
    page.close()
