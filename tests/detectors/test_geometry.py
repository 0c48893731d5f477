from __future__ import annotations

import pytest

from detectors.geometry import bounding_box, point_in_polygon

SQUARE = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
# A U shape: the notch (0.4..0.6, 0.5..1) is outside.
U_SHAPE = [(0, 0), (1, 0), (1, 1), (0.6, 1), (0.6, 0.5), (0.4, 0.5), (0.4, 1), (0, 1)]


@pytest.mark.parametrize("x, y, inside", [
    (0.5, 0.5, True), (1.5, 0.5, False), (-0.1, 0.5, False),
    (0.0, 0.5, True),   # on the left edge
    (1.0, 1.0, True),   # on a corner
    (0.5, 0.0, True),   # on the bottom edge
    (0.5, 1.0000001, False),
])
def test_square(x, y, inside):
    assert point_in_polygon(x, y, SQUARE) is inside


@pytest.mark.parametrize("x, y, inside", [(0.5, 0.75, False), (0.5, 0.25, True), (0.2, 0.9, True), (0.6, 0.7, True)])
def test_concave(x, y, inside):
    assert point_in_polygon(x, y, U_SHAPE) is inside


def test_bounding_box():
    assert bounding_box(U_SHAPE) == (0, 0, 1, 1)
