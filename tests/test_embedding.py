"""Embedding of CNN codes: layout quality on data with known clusters, optimal grid snapping against brute
force, code collection against a hand-hooked forward, and the logged layout read back through TensorBoard
(CNNVIZ and its own Projector)."""

import itertools
import json

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE, trustworthiness
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from helpers import clustered_codes, get_json, tensorboard_client

from tb_cnnviz import CNNViz
from tb_cnnviz.demo import DigitsNet, load_digits
from tb_cnnviz.methods import collect_codes, embed, grid_layout, nearest_neighbours, neighbour_preservation


def test_tsne_keeps_known_clusters_apart_and_is_reproducible():
    codes, labels = make_blobs(n_samples=400, n_features=60, centers=5, cluster_std=2.0, random_state=0)
    layout = embed(codes, seed=3)
    assert layout.shape == (400, 2) and layout.min() >= 0 and layout.max() == pytest.approx(1.0)
    neighbours = KNeighborsClassifier(5).fit(layout[::2], labels[::2])
    assert neighbours.score(layout[1::2], labels[1::2]) >= 0.98
    assert trustworthiness(codes, layout, n_neighbors=10) >= 0.9
    np.testing.assert_array_equal(layout, embed(codes, seed=3))


def test_pca_layout_is_scikit_learn_s_first_two_components_up_to_sign_on_one_scale():
    codes, _ = make_blobs(n_samples=300, n_features=40, centers=4, cluster_std=3.0, random_state=2)
    codes = codes * np.linspace(0.5, 3.0, 40)  # distinct variances: the components are well separated
    layout = embed(codes, method="pca")
    reference = PCA(n_components=2, svd_solver="full").fit_transform(codes.astype(np.float64))
    # embed shifts each axis to start at 0 and divides both by the largest value: a sign flip of an axis
    # keeps its range, so the divisor is the same whichever sign each component came out with
    shifted = reference - reference.min(axis=0)
    scale = shifted.max()
    assert layout.shape == (300, 2) and layout.min() == 0 and layout.max() == pytest.approx(1.0)
    for axis in range(2):
        component = reference[:, axis]
        candidates = [(sign * component - (sign * component).min()) / scale for sign in (1, -1)]
        error = min(np.abs(layout[:, axis] - candidate).max() for candidate in candidates)
        assert error < 1e-4, (axis, error)




def naive_preservation(codes, layout, k):
    def neighbours(points):
        return NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(points).kneighbors(points, return_distance=False)[:, 1:]

    return np.mean([len(set(a) & set(b)) / k for a, b in zip(neighbours(codes), neighbours(layout))])


def test_nearest_neighbours_and_preservation_match_scikit_learn():
    generator = np.random.default_rng(1)
    codes = generator.normal(size=(700, 33)).astype(np.float32)
    indices, distances = nearest_neighbours(codes, 12, chunk=100)  # several chunks
    reference_distances, reference_indices = NearestNeighbors(n_neighbors=13).fit(codes).kneighbors(codes)
    np.testing.assert_array_equal(indices, reference_indices[:, 1:])
    np.testing.assert_allclose(distances, reference_distances[:, 1:], rtol=1e-4)
    layout = codes[:, :2] + generator.normal(size=(700, 2)) * 0.3
    assert neighbour_preservation(codes, layout, k=10) == pytest.approx(naive_preservation(codes, layout, 10))
    assert neighbour_preservation(codes, codes, k=10) == 1.0
    with pytest.raises(ValueError, match=r"k must be an int in \[1, N - 1\]"):
        nearest_neighbours(codes[:5], 5)
    with pytest.raises(ValueError, match="one row per point"):
        neighbour_preservation(codes, layout[:600])


@pytest.mark.slow
def test_layout_keeps_neighbours_as_well_as_scikit_learn_on_subspace_codes():
    codes, _ = clustered_codes(1000, dimensions=256)  # a PCA to 50 dimensions first keeps 0.94x here, 0.85x at 10,000 codes
    ours = neighbour_preservation(codes, embed(codes, seed=0))
    theirs = neighbour_preservation(codes, TSNE(random_state=0).fit_transform(codes))
    assert ours >= 0.95 * theirs, (ours, theirs)


def test_degenerate_and_bad_codes():
    np.testing.assert_array_equal(embed(np.ones((20, 7))), np.full((20, 2), 0.5, dtype=np.float32))
    with pytest.raises(ValueError, match="codes contain NaN or Inf"):
        embed(np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match=r"codes must be \(N, D\) with N >= 2"):
        embed(np.ones(5))
    with pytest.raises(ValueError, match="method must be one of"):
        embed(np.random.rand(10, 3), method="umap")


def test_grid_snapping_is_the_optimal_assignment():
    generator = np.random.default_rng(7)
    for _ in range(20):
        points = generator.random((6, 2))
        cells = grid_layout(points, rows=2, cols=3)
        assert sorted(cells.tolist()) == list(range(6))
        unit = (points - points.min(0)) / np.ptp(points, axis=0)
        centres = np.array([[(c + 0.5) / 3, (r + 0.5) / 2] for r in range(2) for c in range(3)])

        def cost(assignment):
            return sum(((unit[i] - centres[cell]) ** 2).sum() for i, cell in enumerate(assignment))

        best = min(cost(perm) for perm in itertools.permutations(range(6)))
        assert cost(cells) == pytest.approx(best)
    with pytest.raises(ValueError, match="a 2x2 grid has 4 cells for 6 points"):
        grid_layout(generator.random((6, 2)), rows=2, cols=2)


def test_a_maps_codes_are_its_average_over_positions_unless_asked_to_flatten():
    images, labels = load_digits()
    torch.manual_seed(0)
    model = DigitsNet()
    data = [(images[i : i + 50], labels[i : i + 50]) for i in range(0, 200, 50)]
    kept = collect_codes(model, data, "relu3", n=120)
    flat = collect_codes(model, data, "relu3", n=120, pool=None)
    outputs = []
    handle = model.relu3.register_forward_hook(lambda m, i, o: outputs.append(o.clone()))
    model.eval()
    with torch.no_grad():
        predicted = model(images[:120]).argmax(dim=1)
    handle.remove()
    assert kept.codes.shape == (120, model.conv3.out_channels) and kept.labels.tolist() == labels[:120].tolist()
    torch.testing.assert_close(kept.codes, outputs[0].mean(dim=(2, 3)))
    assert kept.pooled_from == tuple(outputs[0].shape[1:]) and flat.pooled_from is None
    torch.testing.assert_close(flat.codes, outputs[0].flatten(1))
    assert torch.equal(kept.predicted, predicted) and kept.thumbnails.shape == (120, 1, 32, 32)
    with pytest.raises(ValueError, match="pool must be 'avg'.* or None"):
        collect_codes(model, data, "relu3", n=120, pool="max")


class ResidualHead(torch.nn.Module):
    """A residual block (the batch norm's output added to in place, then ReLU'd in place) and a Linear layer
    followed by an in-place ReLU, as AlexNet's fc7: both layers' outputs change after their hooks ran."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(3)
        self.fc = torch.nn.Linear(3 * 8 * 8, 6)

    def forward(self, x):
        out = self.bn(self.conv(x))
        out += x
        out = torch.relu_(out)
        return torch.relu_(self.fc(out.flatten(1)))


def test_a_layer_whose_output_is_changed_in_place_later_gives_its_own_codes():
    torch.manual_seed(0)
    model = ResidualHead().eval()
    images = torch.randn(10, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        own_bn = model.bn(model.conv(images))  # what the layers gave, before the in-place ops changed them
        own_fc = model.fc(torch.relu(own_bn + images).flatten(1))
    data = [images[:4], images[4:]]
    torch.testing.assert_close(collect_codes(model, data, "bn", n=10).codes, own_bn.mean(dim=(2, 3)))
    torch.testing.assert_close(collect_codes(model, data, "bn", n=10, pool=None).codes, own_bn.flatten(1))
    assert (own_fc < 0).any()  # else the ReLU would not have changed it
    torch.testing.assert_close(collect_codes(model, data, "fc", n=10).codes, own_fc)


def test_logged_layout_reads_back_and_the_projector_sees_the_codes(tmp_path):
    images, labels = load_digits()
    torch.manual_seed(0)
    data = [(images[i : i + 64], labels[i : i + 64]) for i in range(0, 256, 64)]
    with CNNViz(DigitsNet(), tmp_path / "run", raise_errors=True) as viz:
        assert viz.log_embedding(data, "relu3", 4, n=200, to_pixels=lambda x: x * 0.5 + 0.5,
                                 class_names=[f"<i>{c}</i>" for c in range(10)], grid=100) == 200
        with pytest.raises(ValueError, match="class_names has 3 names"):
            viz.log_embedding(data, "relu3", 5, n=50, class_names=["a", "b", "c"])
    client = tensorboard_client(tmp_path, "false")
    _, sample = get_json(client, "sample", run="run", kind="embedding", layer="relu3", step=4)
    meta = sample["meta"]
    assert meta["pooled"] == "global average of a ({}, 8, 8) map".format(DigitsNet().conv3.out_channels)
    assert meta["count"] == len(meta["xy"]) == 200 and meta["labels"] == labels[:200].tolist()
    assert meta["grid"]["count"] == 100 and sorted(meta["grid"]["cells"]) == list(range(100))
    assert meta["class_names"][3] == "<i>3</i>"
    reply = client.get("/data/plugin/projector/info", query_string={"run": "run"})
    assert reply.status_code == 200, reply.data
    info = json.loads(reply.data)
    (embedding,) = info["embeddings"]
    assert embedding["tensorName"] == "cnnviz/relu3:00004" and embedding["tensorShape"] == [200, DigitsNet().conv3.out_channels]  # tag:step


def _projector_tsv(logdir):
    (path,) = logdir.rglob("tensors.tsv")
    rows = path.read_text().splitlines()
    return path.stat().st_size, [[float(v) for v in row.split("\t")] for row in rows]


@pytest.mark.slow  # squeezenet at 224 px (9 s)
def test_squeezenet_codes_reach_the_projector_pooled_and_under_the_byte_bound(tmp_path, recwarn):
    """SqueezeNet has no pooled module: its last block gives a (512, 13, 13) map, 86,528 numbers an image, which
    the Projector got whole (64 MB for 64 images). Its codes are now the map's average over positions."""
    from torchvision.models import squeezenet1_0

    from tb_cnnviz.views.embedding import PROJECTOR_MAX_BYTES

    torch.manual_seed(0)
    model = squeezenet1_0(weights=None, num_classes=10)
    images, labels = torch.rand(64, 3, 224, 224), torch.arange(64) % 10
    data = [(images[i : i + 16], labels[i : i + 16]) for i in range(0, 64, 16)]
    with CNNViz(model, tmp_path / "run", raise_errors=True) as viz:
        assert viz.log_embedding(data, "features", 0, n=64) == 64
    assert not [w for w in recwarn if "Projector" in str(w.message)]
    size, codes = _projector_tsv(tmp_path)
    model.eval()
    with torch.no_grad():
        maps = model.features(images)
    assert maps.shape[1:] == (512, 13, 13) and size <= PROJECTOR_MAX_BYTES
    torch.testing.assert_close(torch.tensor(codes), maps.mean(dim=(2, 3)), rtol=1e-4, atol=1e-6)
    _, sample = get_json(tensorboard_client(tmp_path, "false"), "sample", run="run", kind="embedding",
                         layer="features", step=0)
    assert sample["meta"]["pooled"] == "global average of a (512, 13, 13) map"
    assert sample["meta"]["dimensions"] == 512


def test_codes_over_the_projectors_byte_bound_are_left_out_with_a_warning(tmp_path, monkeypatch):
    """A user's choice whose codes exceed the bound (here a bound of 40 KB, so that a small net exceeds it) writes
    the first codes that fit and says so, pointing at the user's call; the tab's layout keeps every code."""
    from tb_cnnviz.views import embedding as view

    monkeypatch.setattr(view, "PROJECTOR_MAX_BYTES", 40_000)
    images, labels = load_digits()
    torch.manual_seed(0)
    data = [(images[i : i + 64], labels[i : i + 64]) for i in range(0, 256, 64)]
    with CNNViz(DigitsNet(), tmp_path / "run", raise_errors=True) as viz:
        with pytest.warns(UserWarning, match=r"the Projector gets the first (\d+) of 200 codes") as caught:
            assert viz.log_embedding(data, "relu3", 0, n=200) == 200
    (warning,) = [w for w in caught if "Projector" in str(w.message)]
    assert warning.filename == __file__
    size, codes = _projector_tsv(tmp_path)
    assert size <= 40_000 and 0 < len(codes) < 200
    assert f"the first {len(codes)} of 200" in str(warning.message)
    _, sample = get_json(tensorboard_client(tmp_path, "false"), "sample", run="run", kind="embedding",
                         layer="relu3", step=0)
    assert sample["meta"]["count"] == 200
