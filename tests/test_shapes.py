"""The shapes data set: seeded, balanced, masks that match what was drawn (checked by geometry), bad input named."""

import numpy as np
import pytest
import torch

from tb_cnnviz.datasets import CLASSES, shapes


@pytest.fixture(scope="module")
def data():
    return shapes(200, size=48, seed=3)


def test_shapes_and_types_and_balance(data):
    assert data.images.shape == (200, 3, 48, 48) and data.images.dtype == torch.float32
    assert data.labels.shape == (200,) and data.labels.dtype == torch.int64
    assert data.masks.shape == (200, 48, 48) and data.masks.dtype == torch.bool
    assert 0 <= data.images.min() and data.images.max() <= 1
    assert data.labels.bincount(minlength=len(CLASSES)).tolist() == [40] * len(CLASSES)
    assert len(data) == 200 and data.classes == CLASSES
    image, label = data[7]
    assert torch.equal(image, data.images[7]) and label == data.labels[7]
    batch = next(iter(torch.utils.data.DataLoader(data, batch_size=16)))
    assert batch[0].shape == (16, 3, 48, 48) and torch.equal(batch[1], data.labels[:16])


def test_same_seed_same_images_and_global_rng_untouched(data):
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    again = shapes(200, size=48, seed=3)
    assert torch.equal(torch.get_rng_state(), torch_state) and np.random.get_state()[1].tolist() == numpy_state[1].tolist()
    assert torch.equal(again.images, data.images) and torch.equal(again.masks, data.masks)
    other = shapes(200, size=48, seed=4)
    assert not torch.equal(other.images, data.images)


def test_every_object_lies_inside_the_image_and_covers_a_fair_share(data):
    area = data.masks.flatten(1).float().mean(dim=1)
    assert area.min() > 0.02 and area.max() < 0.4
    assert not data.masks[:, 0, :].any() and not data.masks[:, -1, :].any()  # the object never touches the border
    assert not data.masks[:, :, 0].any() and not data.masks[:, :, -1].any()


def bounding_box_share(mask):
    rows, cols = torch.nonzero(mask, as_tuple=True)
    return mask.sum().item() / ((rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)).item()


def test_masks_have_each_class_geometry(data):
    """Rotation-free facts: a disc fills pi/4 of its bounding box, a ring (inner radius 0.55) pi/4 (1 - 0.55^2)
    with its centre empty; the others lie in between."""
    for index in torch.nonzero(data.labels == CLASSES.index("circle"))[:, 0]:
        assert bounding_box_share(data.masks[index]) == pytest.approx(np.pi / 4, abs=0.06)
    for index in torch.nonzero(data.labels == CLASSES.index("ring"))[:, 0]:
        mask = data.masks[index]
        assert bounding_box_share(mask) == pytest.approx(np.pi / 4 * (1 - 0.55**2), abs=0.06)
        rows, cols = torch.nonzero(mask, as_tuple=True)
        assert not mask[(rows.min() + rows.max()) // 2, (cols.min() + cols.max()) // 2]


def test_the_object_is_one_colour_and_differs_from_what_surrounds_it(data):
    """Under the mask the pixels share one colour (up to shading and noise); just outside it, they do not."""
    for n in range(0, 200, 10):
        mask = data.masks[n]
        inside = data.images[n][:, mask]
        ring = torch.nn.functional.max_pool2d(mask[None, None].float(), 5, stride=1, padding=2)[0, 0].bool() & ~mask
        outside = data.images[n][:, ring]
        assert inside.std(dim=1).max() < 0.12
        assert (inside.median(dim=1).values - outside.median(dim=1).values).abs().max() > 0.1


@pytest.mark.parametrize(("kwargs", "words"), [({"n": 0}, "n must be"), ({"n": 2.5}, "n must be"),
                                                ({"n": 4, "size": 8}, "size must be"), ({"n": 4, "seed": -1}, "seed")])
def test_bad_input_is_named(kwargs, words):
    with pytest.raises(ValueError, match=words):
        shapes(**kwargs)
