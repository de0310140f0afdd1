"""Correspondence by nearest neighbours in conv features (Long et al.): against a naive loop, an analytic
case, and pairs made by a known transform of one real photograph (scikit-learn's bundled china.jpg)."""

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from helpers import assert_same_state, get_json, model_state, tensorboard_client

from tb_cnnviz import CNNViz
from tb_cnnviz.methods import correspondence, receptive_field
from tb_cnnviz.methods.synthesis.correspondence import cell_centres, nearest_cells

#: Layers of :func:`make_net` and their strides: 1, 2 and 4 pixels.
LAYERS = {"1": 1, "4": 2, "7": 4}
SIDE = 64
#: Share of mutual matches that must land within one stride of where the transform puts the keypoint. Measured:
#: 0.98, 0.94 and 0.88 at the three layers (shift (4, 8) and mirror); chance is about pi * stride^2 / 64^2 < 2%.
MIN_MUTUAL_RATE = 0.8


def make_net(mirror_symmetric: bool = False) -> nn.Sequential:
    """Three conv blocks, random weights (seeded). ``mirror_symmetric`` makes every filter equal to its left-right
    mirror, so the features of a mirrored image are the mirrored features: the invariance a net trained with
    flip augmentation is pushed towards, exact here, which lets the mirror test check the pixel mapping."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU())
    if mirror_symmetric:
        with torch.no_grad():
            for module in net:
                if isinstance(module, nn.Conv2d):
                    module.weight.copy_((module.weight + module.weight.flip(-1)) / 2)
    return net


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    from sklearn.datasets import load_sample_image

    pixels = torch.tensor(load_sample_image("china.jpg")).permute(2, 0, 1).float() / 255
    return F.interpolate(pixels[None], scale_factor=0.25, mode="area")[0]  # (3, 106, 160)


def transformed_pair(photo, shift, mirror):
    """image_a, and image_b showing a's content moved by ``shift`` (rows, cols) and then mirrored left-right.
    Both are crops of the photo, so b has real content where a's does not reach (no padding to match)."""
    top, left = 20, 40
    dy, dx = shift
    a = photo[:, top : top + SIDE, left : left + SIDE]
    b = photo[:, top - dy : top - dy + SIDE, left - dx : left - dx + SIDE]
    return a, b.flip(-1) if mirror else b


def where_transform_puts(points, shift, mirror):
    moved = points + torch.tensor(shift, dtype=torch.float32)
    if mirror:
        moved[:, 1] = SIDE - 1 - moved[:, 1]
    return moved


def agreement(found, shift, mirror):
    """(share of all matches, share of mutual matches) within one stride of the truth, over keypoints whose
    true match lies inside image_b."""
    truth = where_transform_puts(found.points_a, shift, mirror)
    inside = ((truth >= 0) & (truth <= SIDE - 1)).all(dim=1)
    right = (found.points_b - truth).norm(dim=1) <= found.field.stride[0]
    mutual = found.mutual & inside
    return right[inside].float().mean().item(), right[mutual].float().mean().item()


@pytest.mark.parametrize("layer", list(LAYERS))
def test_matches_follow_a_shift_and_a_mirror(photo, layer):
    net = make_net(mirror_symmetric=True)
    shift = (4, 8)  # a multiple of every stride: each keypoint has a true cell to find
    found = correspondence(net, *transformed_pair(photo, shift, mirror=True), layer)
    assert found.field.stride == (LAYERS[layer],) * 2
    overall, mutual = agreement(found, shift, mirror=True)
    assert mutual >= MIN_MUTUAL_RATE, (layer, overall, mutual)
    assert mutual >= overall  # the cross-check drops more wrong matches than right ones


def test_a_shift_by_a_fraction_of_nothing_at_full_resolution(photo):
    """A shift that is no multiple of anything: at stride 1 every point still finds its place (measured 0.98)."""
    found = correspondence(make_net(), *transformed_pair(photo, (5, 7), mirror=False), "1")
    overall, mutual = agreement(found, (5, 7), mirror=False)
    assert mutual >= 0.9, (overall, mutual)


def test_identical_images_match_every_keypoint_to_itself_with_score_one():
    """Noise, so that no two cells share a feature vector (a photo's flat sky, or a cell where every ReLU is off,
    gives ties that any of the tied cells answers rightly); conv outputs, which are never all zero."""
    net = make_net()
    image = torch.rand(3, SIDE, SIDE, generator=torch.Generator().manual_seed(1))
    for layer, stride in zip(("0", "3", "6"), LAYERS.values()):
        found = correspondence(net, image, image.clone(), layer)
        assert torch.equal(found.cells_a, found.cells_b) and torch.equal(found.points_a, found.points_b)
        torch.testing.assert_close(found.scores, torch.ones(len(found)), rtol=0, atol=1e-5)
        assert found.mutual.all()
        h, w = found.map_size
        assert len(found) == h * w == (SIDE // stride) ** 2


def naive_matches(net, a, b, layer_index, cells):
    """Every similarity by a loop over cells: nearest neighbour, its cosine, and the cross-check."""
    with torch.no_grad():
        maps = net[: layer_index + 1](torch.stack([a, b]))
    fa, fb = maps[0], maps[1]
    _, h, w = fa.shape

    def cos(u, v):
        return float(u @ v / max(u.norm() * v.norm(), 1e-12))

    def best(vector, other):
        scores = {(i, j): cos(vector, other[:, i, j]) for i in range(h) for j in range(w)}
        cell = max(scores, key=scores.get)
        return cell, scores[cell]

    result = []
    for i, j in cells:
        cell_b, score = best(fa[:, i, j], fb)
        back, _ = best(fb[:, cell_b[0], cell_b[1]], fa)
        result.append(((i, j), cell_b, score, back == (i, j)))
    return result


def test_equal_to_a_naive_loop_on_a_grid_and_best_first():
    net = make_net()
    generator = torch.Generator().manual_seed(3)
    a, b = torch.rand(2, 3, 24, 24, generator=generator)
    found = correspondence(net, a, b, "4", grid=2)
    cells = [(i, j) for i in range(0, 12, 2) for j in range(0, 12, 2)]
    expected = {cell: rest for cell, *rest in naive_matches(net, a, b, 4, cells)}
    ranked = list(zip(found.mutual.tolist(), found.scores.tolist()))
    assert len(found) == len(cells) and ranked == sorted(ranked, reverse=True)  # mutual first, then by score
    for cell_a, cell_b, score, mutual in zip(found.cells_a.tolist(), found.cells_b.tolist(), found.scores.tolist(),
                                             found.mutual.tolist()):
        want_b, want_score, want_mutual = expected[tuple(cell_a)]
        assert tuple(cell_b) == want_b and mutual == want_mutual
        assert score == pytest.approx(want_score, abs=1e-5)
    assert 0 < int(found.mutual.sum()) < len(found)  # random pictures: both kinds occur, so both were checked
    best = correspondence(net, a, b, "4", grid=2, k=5)
    assert torch.equal(best.cells_a, found.cells_a[:5]) and torch.equal(best.scores, found.scores[:5])
    assert not correspondence(net, a, b, "4", grid=2, mutual=False).mutual.any()


def test_pixels_and_cells_go_through_the_receptive_field_centres():
    net = make_net()
    field = receptive_field(net, "4")
    cells = torch.tensor([[0, 0], [3, 5], [11, 11]])
    centres = cell_centres(field, cells)
    for (i, j), (row, col) in zip(cells.tolist(), centres.tolist()):
        top, left, bottom, right = field.box(i, j)
        assert (row, col) == ((top + bottom - 1) / 2, (left + right - 1) / 2)
    assert torch.equal(nearest_cells(field, centres + 0.4, (12, 12)), cells)
    assert nearest_cells(field, torch.tensor([[0.0, 23.0]]), (12, 12)).tolist() == [[0, 11]]  # clipped to the map
    image = torch.rand(3, 24, 24)
    found = correspondence(net, image, image, "4", points=[[7.0, 11.0], [0.0, 0.0]], k=None)
    assert sorted(found.cells_a.tolist()) == [[0, 0], [3, 5]]


def test_the_model_is_left_as_found_also_on_error():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU())
    net.train()
    net(torch.rand(4, 3, 16, 16)).sum().backward()  # gradients present, as in a training loop
    net[1].weight.requires_grad_(False)
    image = torch.rand(3, 16, 16)
    before = model_state(net)
    found = correspondence(net, image, image.flip(-1), "2")
    assert_same_state(before, model_state(net))
    assert found.points_a.device.type == "cpu" and not found.scores.requires_grad
    with pytest.raises(ValueError, match="has no layer 'conv9'"):
        correspondence(net, image, image, "conv9")
    assert_same_state(before, model_state(net))


def test_bad_input_is_named():
    net = make_net()
    image = torch.rand(3, 16, 16)
    cases = [
        (TypeError, "image_a must be a torch.Tensor", dict(image_a=image.numpy())),
        (ValueError, r"image_b must be one image.*\(2, 3, 16, 16\)", dict(image_b=torch.rand(2, 3, 16, 16))),
        (TypeError, "image_a must be a floating-point tensor", dict(image_a=(image * 255).byte())),
        (ValueError, r"same shape.*\(3, 16, 16\) and \(3, 16, 20\)", dict(image_b=torch.rand(3, 16, 20))),
        (ValueError, r"same shape.*\(3, 16, 16\) and \(1, 16, 16\)", dict(image_b=torch.rand(1, 16, 16))),
        (ValueError, "has no layer '9'.* Its layers are: 0, 1, 2", dict(layer="9")),
        (ValueError, r"points must lie inside image_a \(rows 0..15, columns 0..15\); 1 do not", dict(points=[[2, 3], [16, 1]])),
        (ValueError, r"points must be \(M, 2\)", dict(points=[1.0, 2.0, 3.0])),
        (ValueError, "grid must be a positive int", dict(grid=0)),
        (ValueError, "k must be a positive int", dict(k=0)),
    ]
    for error, message, override in cases:
        arguments = {"model": net, "image_a": image, "image_b": image, "layer": "4", **override}
        with pytest.raises(error, match=message):
            correspondence(**arguments)
    pooled = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ValueError, match="no spatial grid"):
        correspondence(pooled, image, image, "2")


def test_logged_matches_read_back_through_tensorboard(photo, tmp_path):
    net = make_net(mirror_symmetric=True)
    a, b = transformed_pair(photo, (4, 8), mirror=True)
    with CNNViz(net, tmp_path / "run", raise_errors=True) as viz:
        assert viz.log_correspondence(0, a, b, "7", k=40) == 40
        assert viz.log_correspondence(5, a, b, "4", k=2000, name="mirrored") == 32 * 32
    with CNNViz(net, tmp_path / "run2") as viz, pytest.warns(UserWarning, match="log_correspondence failed.*same shape"):
        assert viz.log_correspondence(0, a, b[:, :10], "7") is None  # a bad call warns, training goes on
    reference = correspondence(net, a, b, "7", k=40)
    client = tensorboard_client(tmp_path, "false")
    _, runs = get_json(client, "runs")
    assert runs["runs"][0]["correspondence"] == ["7", "mirrored"]
    status, sample = get_json(client, "sample", run="run", kind="correspondence", layer="7", step=0)
    assert status == 200 and sample["images"] == 2
    meta = sample["meta"]
    assert meta["count"] == 40 and meta["keypoints"] == 16 * 16 and meta["field"]["stride"] == [4, 4]
    np.testing.assert_allclose(meta["points_a"], reference.points_a.numpy())
    np.testing.assert_allclose(meta["points_b"], reference.points_b.numpy())
    np.testing.assert_allclose(meta["scores"], reference.scores.numpy(), rtol=1e-3)
    assert meta["mutual"] == reference.mutual.tolist()
    for index, image in enumerate((a, b)):
        png = client.get("/data/plugin/cnnviz/blob", query_string={"run": "run", "key": sample["blobs"][index]}).data
        picture = np.asarray(Image.open(io.BytesIO(png))).astype(int)
        stretched = (image - image.min()) / (image.max() - image.min())
        expected = (stretched.permute(1, 2, 0) * 255).round().numpy()
        assert picture.shape == (SIDE, SIDE, 3) and np.abs(picture - expected).max() <= 1
    status, other = get_json(client, "sample", run="run", kind="correspondence", layer="mirrored", step=5)
    assert status == 200 and other["meta"]["source_layer"] == "4" and len(other["meta"]["scores"]) == 1024
