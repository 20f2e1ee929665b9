import numpy as np

from app.core import mask_ops


def test_segment_paints_a_gapless_capsule():
    mask = np.zeros((50, 80), bool)
    box = mask_ops.paint_segment(mask, (10, 25), (70, 25), radius=5)
    assert box is not None
    assert mask[25, 10:71].all()  # no gaps along the path
    assert mask[20:31, 40].sum() == 10  # the width is the diameter
    assert not mask[:, :4].any()
    assert not mask[:18].any()


def test_dot_and_erase():
    mask = np.zeros((20, 20), bool)
    mask_ops.paint_segment(mask, (10, 10), (10, 10), radius=3)
    assert mask[10, 10]
    assert mask.sum() > 20
    mask_ops.paint_segment(mask, (10, 10), (10, 10), radius=4, value=False)
    assert not mask.any()


def test_segment_outside_the_image_changes_nothing():
    mask = np.zeros((20, 20), bool)
    assert mask_ops.paint_segment(mask, (-50, -50), (-40, -40), radius=3) is None
    assert not mask.any()


def test_polygon_and_rectangle():
    mask = np.zeros((40, 40), bool)
    mask_ops.fill_polygon(mask, [(5, 5), (35, 5), (5, 35)])
    assert mask[6, 6]
    assert not mask[34, 34]
    mask[:] = False
    mask_ops.fill_rect(mask, (30, 20), (10, 5))
    assert mask.sum() == 20 * 15
    assert mask[5, 10]
    assert mask[19, 29]


def test_dilate_and_erode_are_square_and_bounded():
    mask = np.zeros((30, 30), bool)
    mask[10:20, 10:20] = True
    grown = mask_ops.dilate(mask, 3)
    assert grown.sum() == 16 * 16
    assert grown[7, 7]
    assert not grown[6, 6]
    shrunk = mask_ops.erode(grown, 3)
    np.testing.assert_array_equal(shrunk, mask)
    edge = np.zeros((10, 10), bool)
    edge[:, :5] = True
    assert mask_ops.erode(edge, 1)[:, 0].all()  # the image border does not eat the mask
