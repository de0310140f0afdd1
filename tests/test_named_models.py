"""Several models in one run: a GAN's generator and discriminator watched through one SummaryWriter.

Each ``CNNViz(..., name=...)`` writes under its own name; the plugin lists every model of a run apart, in both
loaders, and a second unnamed instance on the same writer warns once and takes a distinct name.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from helpers import get_json, tensorboard_client

from tb_cnnviz import CNNViz, DeadFilterWarning, metadata
from tb_cnnviz.demo import load_digits
from tb_cnnviz.thinning import base_tag

NOISE = 16


class Generator(nn.Module):
    """DCGAN-like: noise (N, 16, 1, 1) -> 4x4 -> 8x8 -> 16x16 digits."""

    def __init__(self) -> None:
        super().__init__()
        self.project = nn.ConvTranspose2d(NOISE, 32, 4)
        self.relu0 = nn.ReLU()
        self.up = nn.Upsample(scale_factor=2)
        self.conv1 = nn.Conv2d(32, 24, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(24, 1, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.relu0(self.project(z))
        x = self.relu1(self.conv1(self.up(x)))
        return torch.tanh(self.conv2(self.up(x)))


class Discriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 12, 3, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.fc = nn.Linear(12 * 4 * 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu2(self.conv2(self.relu1(self.conv1(x)))).flatten(1))


STEPS, LOG_EVERY, BATCH = 16, 4, 32  # 16 steps: the evidence a dead-filter warning waits for


@pytest.fixture(scope="module")
def gan_logdir(tmp_path_factory):
    """A small GAN trained on the digits (16x16, scaled to [-1, 1]), both networks watched on one writer."""
    torch.manual_seed(0)
    images = load_digits(size=16)[0]
    images = (images - images.amin()) / (images.amax() - images.amin()) * 2 - 1
    generator, discriminator = Generator(), Discriminator()
    with torch.no_grad():
        discriminator.conv1.bias[0] = -100.0  # one channel of the discriminator dead from the start
    logdir = tmp_path_factory.mktemp("gan")
    writer = SummaryWriter(str(logdir / "gan"))
    noise = torch.randn(4, NOISE, 1, 1)
    watched = {
        "generator": CNNViz(generator, writer, probe_images=noise, name="generator", raise_errors=True),
        "discriminator": CNNViz(discriminator, writer, probe_images=images[:4], name="discriminator", raise_errors=True),
    }
    for viz in watched.values():
        viz.watch_dead_filters(every=LOG_EVERY)
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-3, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(STEPS):
            real = images[torch.randint(len(images), (BATCH,))]
            fake = generator(torch.randn(BATCH, NOISE, 1, 1))
            loss_d = bce(discriminator(real), torch.ones(BATCH, 1)) + bce(discriminator(fake.detach()), torch.zeros(BATCH, 1))
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            loss_g = bce(discriminator(fake), torch.ones(BATCH, 1))
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            writer.add_scalar("loss/discriminator", loss_d.item(), step)
            for viz in watched.values():
                viz.step(step)
                if step % LOG_EVERY == 0:
                    viz.log_activations(step)
                    viz.log_filters(step)
        for viz in watched.values():
            viz.close()
    writer.close()
    return logdir, {"generator": generator, "discriminator": discriminator}, caught


@pytest.fixture(scope="module", params=["false", "true"], ids=["python_loader", "rust_data_server"])
def gan_client(request, gan_logdir):
    return tensorboard_client(gan_logdir[0], request.param)


def _layers(model: nn.Module, kinds: tuple[type, ...]) -> list[str]:
    return [name for name, module in model.named_modules() if isinstance(module, kinds)]


@pytest.mark.slow
def test_each_model_of_a_gan_is_listed_apart_with_its_own_layers(gan_client, gan_logdir):
    _, models, _ = gan_logdir
    status, runs = get_json(gan_client, "runs")
    assert status == 200
    by_model = {entry["model"]: entry for entry in runs["runs"] if entry["run"] == "gan"}
    assert sorted(by_model) == ["discriminator", "generator"]
    for name, model in models.items():
        entry = by_model[name]
        assert entry["filters"] == _layers(model, (nn.Conv2d, nn.ConvTranspose2d))
        assert entry["dead"] == _layers(model, (nn.ReLU,))
        assert set(entry["activations"]) == set(_layers(model, (nn.Conv2d, nn.ConvTranspose2d, nn.ReLU)))
        conv1 = model.conv1
        status, sample = get_json(gan_client, "sample", run="gan", model=name, kind="activations", layer="conv1",
                                  step=STEPS - LOG_EVERY)
        assert status == 200 and sample["model"] == name
        assert sample["meta"]["channels_total"] == conv1.out_channels  # 24 in the generator, 8 in the discriminator
        status, filters = get_json(gan_client, "sample", run="gan", model=name, kind="filters", layer="conv1", step=0)
        assert filters["meta"]["shape"] == list(conv1.weight.shape)
    status, dead = get_json(gan_client, "dead_summary", run="gan", model="discriminator")
    assert status == 200 and dead["model"] == "discriminator" and 0 in dead["layers"]["relu1"]["dead"]
    status, dead = get_json(gan_client, "dead", run="gan", model="discriminator", layer="relu1")
    assert dead["steps"] == [LOG_EVERY - 1 + i * LOG_EVERY for i in range(STEPS // LOG_EVERY)]
    assert all(row[0] == 1.0 for row in dead["rates"])


@pytest.mark.slow
def test_a_model_that_is_not_there_is_a_404_naming_the_models(gan_client):
    status, reply = get_json(gan_client, "steps", run="gan", kind="activations", layer="conv1")
    assert status == 404 and "'discriminator'" in reply["error"] and "'generator'" in reply["error"]


@pytest.mark.slow
def test_tags_carry_the_model_name_and_warnings_say_which_model(gan_logdir):
    logdir, _, caught = gan_logdir
    (path,) = (logdir / "gan").glob("events.*")
    tags = {v.tag for e in EventFileLoader(str(path)).Load() for v in e.summary.value}
    ours = {t for t in tags if t.startswith(metadata.TAG_PREFIX)}
    assert ours and all(t.startswith(("cnnviz.generator/", "cnnviz.discriminator/")) for t in ours)
    assert "cnnviz.discriminator/dead_fraction/relu1" in tags  # the Scalars tab groups each model's scalars
    died = [str(w.message) for w in caught if issubclass(w.category, DeadFilterWarning)]
    assert any("'relu1' of model 'discriminator'" in message for message in died)


def _tags(logdir: Path) -> set[str]:
    """Every tag written, a picture series' slot tags as its one tag (see tb_cnnviz.thinning)."""
    return {base_tag(v.tag) for path in logdir.glob("events.*") for e in EventFileLoader(str(path)).Load()
            for v in e.summary.value}


def test_a_second_unnamed_instance_on_one_writer_warns_once_and_writes_apart(tiny_net, tmp_path):
    writer = SummaryWriter(str(tmp_path))
    first = CNNViz(tiny_net, writer, probe_images=torch.rand(1, 1, 6, 6))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        second = CNNViz(tiny_net, writer, probe_images=torch.rand(1, 1, 6, 6))
        first.log_filters(0)
        second.log_filters(0)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "name=" in messages[0] and repr(second.name) in messages[0]
    assert first.name == "" and second.name not in ("", first.name)
    first.close()
    second.close()
    writer.close()
    assert {metadata.tag("filters", "conv1"), metadata.tag("filters", "conv1", second.name)} <= _tags(tmp_path)


def test_the_same_name_twice_on_one_log_directory_is_made_distinct_and_a_closed_name_is_free_again(tiny_net, tmp_path):
    first = CNNViz(tiny_net, tmp_path, name="student")
    with pytest.warns(UserWarning, match="student"):
        second = CNNViz(tiny_net, tmp_path, name="student")
    assert second.name != "student"
    second.close()
    first.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = CNNViz(tiny_net, tmp_path, name="student")  # the name was released at close
    assert again.name == "student"
    again.close()


@pytest.mark.parametrize("name, error", [(3, TypeError), ("", ValueError), ("a/b", ValueError), ("a\nb", ValueError)])
def test_bad_names_are_refused(tiny_net, tmp_path, name, error):
    with pytest.raises(error, match="name"):
        CNNViz(tiny_net, tmp_path, name=name)


def test_data_without_a_model_name_reads_as_the_unnamed_model():
    old = json.dumps({"version": 1, "kind": "activations", "layer": "conv1", "order": 0}).encode()
    content = metadata.parse_plugin_content(old)
    assert (content.model, content.kind, content.layer) == ("", "activations", "conv1")
    named = metadata.create_summary_metadata(metadata.PluginContent(kind="dead", layer="relu1", model="critic"))
    assert metadata.parse_plugin_content(named.plugin_data.content).model == "critic"
    assert np.isclose(json.loads(named.plugin_data.content)["version"], metadata.FORMAT_VERSION)


def test_a_name_is_free_again_once_its_instance_is_gone(tiny_net, tmp_path):
    import gc

    CNNViz(tiny_net, tmp_path)  # never closed, dropped at once
    gc.collect()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert CNNViz(tiny_net, tmp_path).name == ""


@pytest.mark.slow
@pytest.mark.browser
def test_the_tab_shows_each_model_as_a_run_and_its_alert_names_it(gan_logdir):
    from playwright.sync_api import sync_playwright

    from helpers import tensorboard_process
    from test_browser import CHROMIUM_ARGS, chromium_path, open_tab

    shown = {"gan · discriminator", "gan · generator"}
    with tensorboard_process(gan_logdir[0], ready=b"discriminator") as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        problems: list[str] = []
        page, frame = open_tab(browser, url, problems)
        runs = frame.eval_on_selector_all("input.run-toggle", "els => els.map(e => e.dataset.run)")
        assert set(runs) == shown  # pick a model like a run
        frame.wait_for_selector(".dead-alert")
        assert "gan · discriminator" in frame.locator(".dead-alert").inner_text()
        frame.locator(".layer-item[data-layer='conv1']").click()
        for run in shown:  # side by side, each with its own model's pictures
            frame.wait_for_selector(f".run-column[data-run='{run}'] img.mosaic", timeout=15_000)
        frame.locator(f"input.run-toggle[data-run='gan · generator']").uncheck()
        frame.wait_for_function("document.querySelectorAll('.run-column').length === 1")
        assert [p for p in problems if "cnnviz" in p or "page error" in p] == [], problems
        browser.close()
