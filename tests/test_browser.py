"""The CNNVIZ tab in real Chromium (Debian's, driven by Playwright) against a real `tensorboard` process.

These tests also refresh the screenshots in docs/ that the README shows, from the demo's own runs only; names
carrying markup are checked by test_browser_hostile_data.py, over a TensorBoard of their own.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import fetch, tensorboard_process
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
DOCS = Path(__file__).resolve().parent.parent / "docs"
#: The view ``kind`` is drawn: every column filled (the tab sets ``data-drawn`` to the view) and every picture in
#: them decoded. Truthy then: the frame's ``performance.now()`` (polled every frame, the moment it was drawn).
VIEW_DRAWN = """kind => {
  const root = document.getElementById('cnnviz-root');
  const drawn = root && root.dataset.drawn === kind
    && [...document.querySelectorAll('.run-columns img')].every((img) => img.complete && img.naturalWidth > 0);
  return drawn ? performance.now() : 0;
}"""


def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get install chromium)")
    return path


@pytest.fixture(scope="module")
def tensorboard_url(demo_logdir: Path) -> Iterator[str]:
    """`tensorboard --logdir` over the demo's log directory: its two runs and nothing else (the README's pictures)."""
    with tensorboard_process(demo_logdir, ready=b"too_high") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_tab(browser, url: str, problems: list[str], ready: str = ".layer-item", on_request=None, fragment="cnnviz"):
    """TensorBoard's own page at the CNNVIZ tab (``fragment``: the URL's hash), once ``ready`` shows in it; returns
    (page, the plugin's iframe). ``on_request(url)`` sees every request the page makes, from the first."""
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    if on_request is not None:
        page.on("request", lambda request: on_request(request.url))
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text} @ {m.location.get('url')}")
            if m.type in ("error", "warning") else None)
    page.goto(f"{url}/#{fragment}")
    deadline = time.monotonic() + 30
    while True:
        frame = next((f for f in page.frames if "plugin_entry.html?name=cnnviz" in f.url), None)
        if frame is not None or time.monotonic() > deadline:
            break
        page.wait_for_timeout(100)
    assert frame is not None, "the CNNVIZ iframe never loaded"
    frame.wait_for_selector(ready, timeout=30_000)
    return page, frame


def test_the_tab_works_under_a_path_prefix(browser, demo_logdir):
    """TensorBoard behind a proxy (``--path_prefix``): the tab finds its modules and its routes under it."""
    with tensorboard_process(demo_logdir, ready=b"too_high", extra_flags=("--path_prefix=/proxied/tb",)) as url:
        assert url.endswith("/proxied/tb")
        problems: list[str] = []
        page, frame = open_tab(browser, url, problems)
        frame.wait_for_function("[...document.querySelectorAll('img.mosaic')].length > 0 && "
                                "[...document.querySelectorAll('img.mosaic')].every(i => i.complete && i.naturalWidth > 0)")
        assert "/proxied/tb/data/plugin/cnnviz/blob?" in frame.eval_on_selector("img.mosaic", "img => img.src")
        assert [p for p in problems if "cnnviz" in p or "page error" in p] == []
        page.close()


def test_the_tab_shows_both_runs_and_flags_dead_layers(browser, tensorboard_url):
    problems: list[str] = []
    page, frame = open_tab(browser, tensorboard_url, problems)

    runs = frame.eval_on_selector_all("input.run-toggle", "els => els.map(e => e.dataset.run)")
    assert runs == ["healthy_lr0.05", "too_high_lr0.9"]
    frame.wait_for_selector(".run-column .run-name")
    names = frame.eval_on_selector_all(".run-column .run-name", "els => els.map(e => e.textContent)")
    assert names == runs

    frame.wait_for_selector(".dead-alert")
    assert "too_high_lr0.9" in frame.locator(".dead-alert").inner_text()
    badges = frame.eval_on_selector_all(
        ".layer-item", "els => els.map(e => [e.dataset.layer, (e.querySelector('.dead-badge') || {}).textContent || ''])"
    )
    flagged = {layer for layer, badge in badges if "dead" in badge}
    assert {"relu2", "relu3"} <= flagged, badges

    frame.locator(".layer-item[data-layer='relu3']").click()
    frame.wait_for_selector("img.mosaic")
    frame.wait_for_function("[...document.querySelectorAll('img.mosaic')].every(i => i.complete && i.naturalWidth > 0)")
    frame.wait_for_selector(".run-column[data-run='too_high_lr0.9'] .tile-mark.mark-dead", timeout=10_000)
    page.screenshot(path=str(DOCS / "screenshot.png"))

    frame.locator("button.view-button[data-view='filters']").click()
    frame.locator(".layer-item[data-layer='conv2']").click()
    healthy_tiles = frame.locator(".run-column[data-run='healthy_lr0.05'] .filter-tile")
    expect(healthy_tiles).to_have_count(32)  # each run's column fills in when its response arrives
    frame.locator("#sort-noise").check()
    frame.wait_for_function(
        """() => {
            const tiles = document.querySelectorAll(".run-column[data-run='healthy_lr0.05'] .filter-tile");
            const noise = [...tiles].map(e => Number(e.dataset.noise));
            return noise.length === 32 && noise.every((v, i) => i === 0 || noise[i - 1] >= v);
        }"""
    )
    scores = healthy_tiles.evaluate_all("els => els.map(e => Number(e.dataset.noise))")
    assert scores == sorted(scores, reverse=True) and len(scores) == 32
    page.screenshot(path=str(DOCS / "screenshot-filters.png"))

    frame.locator("button.view-button[data-view='dead']").click()
    frame.locator(".layer-item[data-layer='relu2']").click()
    frame.wait_for_selector("canvas.dead-timeline")
    # relu2's timelines, not those of relu1 (the view's first layer) still on screen while relu2's load
    frame.wait_for_selector(".run-column[data-run='too_high_lr0.9'] .dead-latest.flag-dead")
    frame.wait_for_function("!document.querySelector('.run-body.stale')")
    page.screenshot(path=str(DOCS / "screenshot-dead.png"))

    ours = [p for p in problems if "cnnviz" in p or "page error" in p]
    assert ours == [], problems
    page.close()


def test_the_step_slider_shows_older_steps(browser, tensorboard_url):
    problems: list[str] = []
    page, frame = open_tab(browser, tensorboard_url, problems)
    frame.locator(".layer-item[data-layer='conv1']").click()
    frame.wait_for_selector("#step-slider")
    expect(frame.locator("#step-label")).to_contain_text("239")  # the latest step by default
    frame.locator("#step-slider").fill("30")
    expect(frame.locator("#step-label")).to_contain_text("30")
    frame.wait_for_function(
        "[...document.querySelectorAll('.run-column .step-info')].some(e => e.textContent.includes('step 20'))"
    )
    assert [p for p in problems if "cnnviz" in p or "page error" in p] == []
    page.close()


def test_where_it_looks_shows_maps_side_by_side_with_occlusion_probabilities_on_hover(browser, tensorboard_url):
    problems: list[str] = []
    page, frame = open_tab(browser, tensorboard_url, problems)
    frame.locator("button.view-button[data-view='attribution']").click()
    expect(frame.locator(".layers-panel h2")).to_have_text("Methods")
    methods = frame.locator(".layer-item").evaluate_all("els => els.map(e => e.dataset.layer)")
    assert methods == ["saliency", "guided_backprop", "grad_cam", "occlusion"], methods

    column = frame.locator(".run-column[data-run='healthy_lr0.05']")
    expect(column.locator(".attribution-row")).to_have_count(4)  # the demo's four probe images
    for method in methods:
        expect(column.locator(f".attribution-cell[data-method='{method}']")).to_have_count(4)
    expect(column.locator("canvas.heat-map[data-drawn='true']")).to_have_count(8)  # saliency and Grad-CAM
    frame.wait_for_function("[...document.querySelectorAll('img.signed-map, img.overlay-base')]"
                            ".every(i => i.complete && i.naturalWidth > 0)")

    # Heat maps are normalised to their maximum, so the colour map's top colour must appear on the canvas.
    top_colour_pixels = column.locator(".attribution-cell[data-method='grad_cam'] canvas.heat-map").first.evaluate(
        """canvas => { const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
                       let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] === 252 && d[i+1] === 255 && d[i+2] === 164) n++;
                       return n; }""")
    assert top_colour_pixels > 0

    # Hovering the occlusion map at the centre of the occluder at grid position (1, 2) shows its probability.
    sample = json_route(tensorboard_url, "sample", run="healthy_lr0.05", kind="attribution", layer="occlusion",
                        step=239)["meta"]
    grid = sample["grid"]
    row, col = 1, 2
    layer = column.locator(".attribution-cell[data-method='occlusion'] .occlusion-layer").first
    box = layer.bounding_box()
    scale = box["width"] / sample["width"]
    layer.hover(position={"x": (col * grid["stride"] + grid["window"] / 2) * scale,
                          "y": (row * grid["stride"] + grid["window"] / 2) * scale})
    tooltip = frame.locator(".cnnviz-tooltip")
    expect(tooltip).to_contain_text(f"occluder at row {row * grid['stride']}, column {col * grid['stride']}")
    expect(tooltip).to_contain_text(f"= {100 * grid['values'][0][row][col]:.1f}%")
    expect(tooltip).to_contain_text(f"unoccluded: {100 * sample['target_probability'][0]:.1f}%")
    page.screenshot(path=str(DOCS / "screenshot-attribution.png"))

    frame.locator("#overlay-opacity").fill("0")
    assert column.locator("canvas.heat-map").first.evaluate("c => getComputedStyle(c).opacity") == "0"
    frame.locator(".layer-item[data-layer='saliency']").click()
    expect(column.locator(".attribution-cell[data-method='saliency']")).to_have_count(0)
    expect(column.locator(".attribution-cell[data-method='grad_cam']")).to_have_count(4)

    assert [p for p in problems if "cnnviz" in p or "page error" in p] == []
    page.close()


def test_where_it_fails_shows_the_confusion_and_a_click_opens_its_examples(browser, tensorboard_url):
    problems: list[str] = []
    page, frame = open_tab(browser, tensorboard_url, problems)
    frame.locator("button.view-button[data-view='performance']").click()
    expect(frame.locator(".layers-panel h2")).to_have_text("Data sets")
    meta = json_route(tensorboard_url, "sample", run="healthy_lr0.05", kind="performance", layer="held_out", step=239)["meta"]
    column = frame.locator(".run-column[data-run='healthy_lr0.05']")
    cells = column.locator(".confusion-cell")
    expect(cells).to_have_count(100)
    counts = cells.evaluate_all("els => els.map(e => Number(e.dataset.count))")
    assert counts == [count for row in meta["confusion"] for count in row]
    expect(column.locator(".confusion-row-label").first).to_have_text("digit 0")

    accuracies = column.locator(".class-bar-row").evaluate_all("els => els.map(e => Number(e.dataset.class))")
    per_class = meta["per_class"]["accuracy"]
    assert [per_class[c] for c in accuracies] == sorted(per_class[c] for c in accuracies)  # worst first

    example = meta["wrong"]["examples"][0]
    column.locator(f".confusion-cell[data-row='{example['label']}'][data-col='{example['predicted']}']").click()
    thumbnail = column.locator(f".confusion-examples .wrong-thumbnail[data-index='{example['index']}']")
    expect(thumbnail).to_have_attribute("data-drawn", "true")
    expect(column.locator(f".confusion-examples .wrong-saliency[data-index='{example['index']}']")).to_have_attribute(
        "data-drawn", "true")
    expect(column.locator(".attribute-figure")).to_have_count(len(meta["attributes"]))
    expect(column.locator(".attribute-figure[data-attribute='brightness'] circle.bin-accuracy")).to_have_count(
        sum(1 for entry in meta["attributes"]["brightness"]["bins"] if entry["count"]))
    page.screenshot(path=str(DOCS / "screenshot-performance.png"))
    assert [p for p in problems if "cnnviz" in p or "page error" in p] == []
    page.close()


def test_top_patches_browse_channels_and_a_click_opens_one(browser, tensorboard_url):
    problems: list[str] = []
    page, frame = open_tab(browser, tensorboard_url, problems)
    frame.locator("button.view-button[data-view='top_activations']").click()
    layers = frame.locator(".layer-item").evaluate_all("els => els.map(e => e.dataset.layer)")
    assert layers == ["relu2", "relu2 (random directions)"], layers
    meta = json_route(tensorboard_url, "sample", run="healthy_lr0.05", kind="top_activations", layer="relu2", step=239)["meta"]
    column = frame.locator(".run-column[data-run='healthy_lr0.05']")
    expect(column.locator(".top-unit")).to_have_count(len(meta["units"]))
    expect(column.locator(".top-patch[data-drawn='true']")).to_have_count(sum(len(u["images"]) for u in meta["units"]))

    unit = meta["units"][3]
    column.locator(f".top-unit[data-unit='{unit['unit']}']").click()
    detail = column.locator(".top-detail")
    expect(detail.locator("figure")).to_have_count(len(unit["images"]))
    expect(detail).to_contain_text(f"image {unit['images'][0]}")
    expect(detail.locator("canvas.top-whole[data-box='true']")).to_have_count(len(unit["images"]))  # whole image, box drawn
    assert meta["filter_layer"] == "conv2"
    expect(detail.locator(f".top-filter .filter-tile[data-filter='{unit['unit']}']")).to_have_count(1)  # its filter
    dead = json_route(tensorboard_url, "dead", run="healthy_lr0.05", layer="relu2")
    rate = dead["rates"][-1][unit["unit"]]  # the flush at the slider's (latest) step
    expect(detail).to_contain_text(f"dead rate {100 * rate:.1f}% of training inputs at the flush of step {dead['steps'][-1]}")
    page.screenshot(path=str(DOCS / "screenshot-top.png"))

    frame.locator(".layer-item[data-layer='relu2 (random directions)']").click()
    expect(column.locator(".top-unit")).to_have_count(8)
    expect(column).to_contain_text("Random unit directions")
    assert [p for p in problems if "cnnviz" in p or "page error" in p] == []
    page.close()


def json_route(url: str, route: str, **params: object) -> dict:
    import json

    return json.loads(fetch(url, route, params))


def test_embedding_scatter_zooms_into_thumbnails_and_the_grid_shows_them(browser, tensorboard_url):
    problems: list[str] = []
    page, frame = open_tab(browser, tensorboard_url, problems)
    frame.locator("button.view-button[data-view='embedding']").click()
    meta = json_route(tensorboard_url, "sample", run="healthy_lr0.05", kind="embedding", layer="relu3", step=239)["meta"]
    canvas = frame.locator(".run-column[data-run='healthy_lr0.05'] canvas.embedding-canvas")
    expect(canvas).to_have_attribute("data-points", str(meta["count"]))
    assert meta["pooled"].startswith("global average of a (")  # relu3 gives maps: the codes are their averages
    expect(frame.locator(".run-column[data-run='healthy_lr0.05'] .sample-meta").first).to_contain_text(meta["pooled"])
    dead = frame.locator(".run-column[data-run='too_high_lr0.9']")
    expect(dead.locator("canvas.embedding-canvas")).to_have_attribute("data-points", "297")
    expect(dead).to_contain_text("Every image has the same code")  # the high-LR run's relu3 is all dead
    expect(canvas).to_have_attribute("data-thumbnails", "0")

    # Hover the first point: its position follows from the layout (margin 12 of 440 canvas pixels).
    x, y = meta["xy"][0]
    shown = canvas.bounding_box()["width"] / 440
    canvas.hover(position={"x": (12 + x * 416) * shown, "y": (12 + y * 416) * shown})
    expect(frame.locator(".cnnviz-tooltip")).to_contain_text(f"image {meta['index'][0]}")
    expect(frame.locator(".cnnviz-tooltip")).to_contain_text(f"label digit {meta['labels'][0]}")

    for _ in range(6):  # zoom in around that point until thumbnails replace the dots
        page.mouse.wheel(0, -100)
    frame.wait_for_function("Number(document.querySelector(\".run-column[data-run='healthy_lr0.05'] canvas.embedding-canvas\").dataset.thumbnails) > 0")
    page.screenshot(path=str(DOCS / "screenshot-embedding.png"))
    frame.locator(".run-column[data-run='healthy_lr0.05'] .embedding-mode[data-mode='grid']").click()
    expect(canvas).to_have_attribute("data-mode", "grid")
    expect(canvas).to_have_attribute("data-thumbnails", str(meta["grid"]["count"]))
    assert [p for p in problems if "cnnviz" in p or "page error" in p] == []
    page.close()


def test_images_made_by_the_network_inversion_class_models_and_channels_beside_their_top_patches(browser, tensorboard_url):
    problems: list[str] = []
    page, frame = open_tab(browser, tensorboard_url, problems)
    healthy = frame.locator(".run-column[data-run='healthy_lr0.05']")

    frame.locator("button.view-button[data-view='inversion']").click()
    meta = json_route(tensorboard_url, "sample", run="healthy_lr0.05", kind="inversion", layer="probe 0", step=239)["meta"]
    figures = healthy.locator(".inversion-row figure")
    expect(figures).to_have_count(1 + len(meta["layers"]))  # the original, then shallow to deep
    expect(figures.nth(1)).to_contain_text(f"code error {100 * meta['code_error'][0]:.1f}%")
    expect(healthy.locator(".inversion-row svg.synth-spark polyline")).to_have_count(len(meta["layers"]))
    frame.wait_for_function("[...document.querySelectorAll('.inversion-row img')].every(i => i.complete && i.naturalWidth === 32)")
    page.screenshot(path=str(DOCS / "screenshot-inversion.png"))

    frame.locator("button.view-button[data-view='class_models']").click()
    expect(healthy.locator(".synth-grid figure")).to_have_count(10)
    expect(healthy.locator(".synth-grid figure").nth(3)).to_contain_text("digit 3")
    frame.locator("#step-slider").evaluate("(s) => { s.value = '0'; s.dispatchEvent(new Event('input')); }")
    expect(healthy.locator(".step-info")).to_contain_text("step 0")
    at_start = json_route(tensorboard_url, "sample", run="healthy_lr0.05", kind="class_models", layer="classes", step=0)["meta"]
    expect(healthy.locator(".synth-grid figure").first).to_contain_text(f"p {100 * at_start['probability'][0]:.1f}%")
    frame.locator("#step-slider").evaluate("(s) => { s.value = s.max; s.dispatchEvent(new Event('input')); }")
    frame.wait_for_function("[...document.querySelectorAll('.synth-grid img')].every(i => i.complete && i.naturalWidth === 32)")

    frame.locator("button.view-button[data-view='channel_images']").click()
    channels = healthy.locator(".synth-channel")
    expect(channels).to_have_count(8)
    expect(channels.first.locator(".synth-filter .filter-tile")).to_have_count(1)  # its filter in conv2
    top = json_route(tensorboard_url, "sample", run="healthy_lr0.05", kind="top_activations", layer="relu2", step=239)["meta"]
    unit = next(u for u in top["units"] if u["unit"] == 0)
    expect(channels.first.locator(".top-patch[data-drawn='true']")).to_have_count(len(unit["images"]))
    expect(healthy).to_contain_text("its top patches (step 239)")
    assert [p for p in problems if "cnnviz" in p or "page error" in p] == []
    page.close()


#: the shapes run of the README's class-model and channel-image screenshots: trained as long as the demo's, so that
#: its class models show shapes; logged only at the start and the end
SHAPES_STEPS = 800


@pytest.fixture(scope="module")
def shapes_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tb_cnnviz.demo_shapes import RUN_NAME, shapes_run

    logdir = tmp_path_factory.mktemp("shapes_logdir")
    shapes_run(logdir, steps=SHAPES_STEPS, log_every=SHAPES_STEPS)
    with tensorboard_process(logdir, ready=RUN_NAME.encode()) as url:
        yield url


def test_class_models_and_channel_images_of_the_shapes_run(browser, shapes_url):
    """The README's pictures of class models and channel images come from the shapes run, where a person can
    check them: the five shapes, each labelled with its name and the probability the net gives it."""
    problems: list[str] = []
    page, frame = open_tab(browser, shapes_url, problems)
    column = frame.locator(".run-column[data-run='shapes']")
    frame.locator("button.view-button[data-view='class_models']").click()
    meta = json_route(shapes_url, "sample", run="shapes", kind="class_models", layer="classes", step=SHAPES_STEPS)["meta"]
    assert meta["classes"] == [0, 1, 2, 3, 4] and meta["input_range"] == [-2.0, 2.0]
    assert meta["parameterization"] == "fourier" and 1 <= meta["steps"] <= meta["max_steps"]
    figures = column.locator(".synth-grid figure")
    expect(figures).to_have_count(5)
    for index, name in enumerate(["circle", "square", "triangle", "cross", "ring"]):
        expect(figures.nth(index)).to_contain_text(name)
        expect(figures.nth(index)).to_contain_text(f"p {100 * meta['probability'][index]:.1f}%")
    frame.wait_for_function("[...document.querySelectorAll('.synth-grid img')].every(i => i.complete && i.naturalWidth === 48)")
    page.screenshot(path=str(DOCS / "screenshot-class-models.png"))

    frame.locator("button.view-button[data-view='channel_images']").click()
    channels = column.locator(".synth-channel")
    expect(channels).to_have_count(12)
    expect(channels.first.locator(".synth-filter .filter-tile")).to_have_count(1)  # its filter in conv2
    frame.wait_for_function("[...document.querySelectorAll('.synth-channel img')].every(i => i.complete && i.naturalWidth > 0)")
    page.screenshot(path=str(DOCS / "screenshot-channels.png"))
    assert [p for p in problems if "cnnviz" in p or "page error" in p] == []
    page.close()


def ramp_colour(value: float) -> tuple[int, int, int]:
    """correspondence.js's colour of a value in [0, 1], written again: the test must not take it from the page."""
    ramp = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]
    t = min(1.0, max(0.0, value)) * (len(ramp) - 1)
    i = min(len(ramp) - 2, int(t))
    return tuple(round(a + (t - i) * (b - a)) for a, b in zip(ramp[i], ramp[i + 1]))


def test_correspondence_draws_lines_by_score_and_the_slider_sets_how_many(browser, tensorboard_url):
    problems: list[str] = []
    page, frame = open_tab(browser, tensorboard_url, problems)
    frame.locator("button.view-button[data-view='correspondence']").click()
    names = frame.locator(".layer-item").evaluate_all("els => els.map(e => e.dataset.layer)")
    assert names == ["another 3 (relu2)", "shifted copy (relu2)"], names  # by name
    frame.locator(".layer-item[data-layer='another 3 (relu2)']").click()
    meta = json_route(tensorboard_url, "sample", run="healthy_lr0.05", kind="correspondence", layer="another 3 (relu2)",
                      step=239)["meta"]
    assert meta["count"] == 64 and len(meta["scores"]) == 64
    column = frame.locator(".run-column[data-run='healthy_lr0.05']")
    canvas = column.locator("canvas.correspondence-canvas")
    expect(canvas).to_have_attribute("data-lines", "40")  # the default: the 40 best
    expect(frame.locator(".run-column[data-run='too_high_lr0.9'] canvas.correspondence-canvas")).to_have_attribute("data-lines", "40")

    column.locator("input.match-count").fill("10")
    expect(canvas).to_have_attribute("data-lines", "10")
    expect(canvas).to_have_attribute("data-mutual", str(sum(meta["mutual"][:10])))
    expect(column.locator(".match-count-label")).to_contain_text("best 10 of 64")
    # The best match is drawn last: its dot on image a has the colour of its score, on the logged scores' range.
    low, high = min(meta["scores"]), max(meta["scores"])
    assert high > low  # two different digits: the scores spread, so the colours say something
    expect(column.locator(".score-high")).to_have_text(f"{float(f'{high:.3g}'):g}")
    row, col = meta["points_a"][0]
    scale = 240 / max(meta["height"], meta["width"])
    pixel = canvas.evaluate(f"c => [...c.getContext('2d').getImageData({(col + 0.5) * scale}, {(row + 0.5) * scale}, 1, 1).data]")
    assert all(abs(a - b) <= 2 for a, b in zip(pixel[:3], ramp_colour((meta["scores"][0] - low) / (high - low)))), (pixel, meta["scores"][0])

    column.locator("input.mutual-only").check()
    expect(canvas).to_have_attribute("data-lines", str(sum(meta["mutual"][:10])))
    column.locator("input.mutual-only").uncheck()
    column.locator("input.match-count").fill("25")
    expect(canvas).to_have_attribute("data-lines", "25")
    page.screenshot(path=str(DOCS / "screenshot-correspondence.png"))

    frame.locator("#step-slider").fill("0")
    expect(column.locator(".step-info")).to_contain_text("step 0")
    expect(canvas).to_have_attribute("data-lines", "25")  # the chosen count stays as the step changes
    assert [p for p in problems if "cnnviz" in p or "page error" in p] == []
    page.close()
