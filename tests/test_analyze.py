"""`tb-cnnviz analyze` end to end: a factory module, a checkpoint and an ImageFolder of real photographs (one
file unreadable) give every view, read back through TensorBoard; bad models, checkpoints and folders get
errors that name what is wrong."""

import textwrap
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_sample_images

from helpers import get_json, tensorboard_client

from tb_cnnviz.cli import main

FACTORY = textwrap.dedent('''
    import torch
    from torch import nn

    def small():
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2))
''')


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    import my_models

    importlib.reload(my_models)
    torch.save(my_models.small().state_dict(), tmp_path / "model.pt")
    photos = load_sample_images().images
    for label, photo in enumerate(photos):
        folder = tmp_path / "images" / ["china", "flower"][label]
        folder.mkdir(parents=True)
        for i in range(6):
            crop = photo[i * 40 : i * 40 + 96, i * 50 : i * 50 + 96]
            Image.fromarray(np.ascontiguousarray(crop)).save(folder / f"{i}.png")
    (tmp_path / "images" / "china" / "broken.png").write_bytes(b"not a png")
    return tmp_path


def test_every_view_from_a_checkpoint_and_an_image_folder(project, capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["analyze", "--model", "my_models:small", "--checkpoint", str(project / "model.pt"),
                     "--images", str(project / "images"), "--logdir", str(project / "runs" / "analysis"), "--image-size", "48"])
    assert code == 0, capsys.readouterr().err
    assert sum("broken.png" in str(w.message) for w in caught) == 1  # named once over every pass; the rest went on
    client = tensorboard_client(project / "runs", "false")
    _, runs = get_json(client, "runs")
    (entry,) = runs["runs"]
    assert entry["activations"] and entry["filters"] == ["0", "3"]
    assert entry["attribution"] == ["saliency", "guided_backprop", "grad_cam", "occlusion"]
    assert entry["top_activations"] == ["3", "3 (random directions)", "3 (relevance)"]
    assert entry["embedding"] == ["5"]
    _, relevance = get_json(client, "sample", run="analysis", kind="top_activations", layer="3 (relevance)",
                            step=0)
    meta = relevance["meta"]  # the folder's classes are the model's: each image's label is explained
    assert (meta["rank"], meta["target"], meta["class_names"]) == ("relevance", "label", ["china", "flower"])
    assert entry["performance"] == ["eval"]
    _, sample = get_json(client, "sample", run="analysis", kind="performance", layer="eval", step=0)
    assert sample["meta"]["examples"] == 12 and sample["meta"]["class_names"] == ["china", "flower"]


def test_bad_models_checkpoints_and_folders_are_named(project, capsys):
    def run(*args):
        code = main(["analyze", *args, "--logdir", str(project / "runs" / "bad")])
        return code, capsys.readouterr().err

    images = ["--images", str(project / "images")]
    code, err = run("--model", "no_such_module:small", "--checkpoint", str(project / "model.pt"), *images)
    assert code == 2 and "cannot import 'no_such_module'" in err
    code, err = run("--model", "my_models", "--checkpoint", str(project / "model.pt"), *images)
    assert code == 2 and "--model must be 'package.module:factory'" in err
    state = torch.load(project / "model.pt")
    state["extra.weight"] = torch.zeros(1)
    del state["7.bias"]
    state["0.weight"] = torch.zeros(4, 3, 3, 3)
    torch.save(state, project / "wrong.pt")
    code, err = run("--model", "my_models:small", "--checkpoint", str(project / "wrong.pt"), *images)
    assert code == 2 and "missing from the checkpoint: 7.bias" in err and "not in the model: extra.weight" in err
    assert "0.weight (4, 3, 3, 3) vs (8, 3, 3, 3)" in err
    (project / "empty").mkdir()
    code, err = run("--model", "my_models:small", "--checkpoint", str(project / "model.pt"), "--images", str(project / "empty"))
    assert code == 2 and "holds no images" in err
    code, err = run("--model", "my_models:small", "--checkpoint", str(project / "model.pt"), *images, "--views", "filters,dreams")
    assert code == 2 and "--views: unknown dreams" in err


def test_a_whole_pickled_module(project, capsys):
    import my_models

    torch.save(my_models.small(), project / "whole.pt")
    code = main(["analyze", "--whole-module", "--checkpoint", str(project / "whole.pt"), "--images", str(project / "images"),
                 "--logdir", str(project / "runs" / "whole"), "--image-size", "32", "--views", "filters,activations"])
    assert code == 0, capsys.readouterr().err
    client = tensorboard_client(project / "runs", "false")
    _, runs = get_json(client, "runs")
    assert [entry["filters"] for entry in runs["runs"] if entry["run"] == "whole"] == [["0", "3"]]


@pytest.mark.slow
def test_the_opt_in_image_synthesis_views(project, capsys):
    code = main(["analyze", "--model", "my_models:small", "--checkpoint", str(project / "model.pt"),
                 "--images", str(project / "images"), "--logdir", str(project / "runs" / "synthesis"),
                 "--image-size", "32", "--views", "inversion,class_models,channel_images,correspondence"])
    assert code == 0, capsys.readouterr().err
    client = tensorboard_client(project / "runs", "false")
    _, runs = get_json(client, "runs")
    (entry,) = runs["runs"]
    assert entry["inversion"] == ["probe 0"] and entry["class_models"] and entry["channel_images"] == ["3"]
    assert entry["correspondence"] == ["images 0 and 1"]


def test_the_probes_are_drawn_across_every_class(project):
    """The folder lists china's files first: the first 4 files would all be china. The probes take each class
    in turn, and the activations view shows their labels."""
    from tb_cnnviz.analyze import analyze, image_folder, load_model

    data = image_folder(project / "images", size=32)
    assert data.labels[:4] == [0, 0, 0, 0]  # what taking the first files would show
    analyze(load_model("my_models:small", project / "model.pt"), data, project / "runs" / "probes",
            views=["activations"], probes=4)
    client = tensorboard_client(project / "runs", "false")
    _, sample = get_json(client, "sample", run="probes", kind="activations", layer="0", step=0)
    shown = sample["meta"]["labels"]
    assert len(shown) == 4 and sorted(shown) == sorted(list(range(len(data.classes))) * 2)


def test_a_folder_whose_classes_are_not_the_models_fails_before_the_first_pass(project, capsys):
    """A 2-class model and a 3-class folder: the performance and class-model views would fail after every
    other view's pass; the mismatch is found first, and the message says what would work."""
    third = project / "images" / "zebra"
    third.mkdir()
    for path in sorted((project / "images" / "flower").glob("*.png")):
        (third / path.name).write_bytes(path.read_bytes())
    code = main(["analyze", "--model", "my_models:small", "--checkpoint", str(project / "model.pt"), "--images",
                 str(project / "images"), "--logdir", str(project / "runs" / "mismatch"), "--image-size", "32",
                 "--views", "all"])
    err = capsys.readouterr().err
    assert code == 2 and "3 class subfolders (china, flower, zebra) but the model has 2 classes" in err
    assert "performance and class_models view(s)" in err and "--views activations," in err
    assert "tb-cnnviz analyze: activations" not in err  # no view started
