"""Distance, cells and the grid search: the grid answers exactly what a full scan answers."""

from __future__ import annotations

import math
import random

import pytest

from stores_service.domain.geo import (
    CELL_DEGREES,
    GridIndex,
    brute_force,
    cell_of,
    distance_km,
    in_vietnam_area,
    outside_block_km,
    ring,
)


def test_distance_between_hanoi_and_ho_chi_minh_city_is_about_1140_km() -> None:
    got = distance_km(21.0285, 105.8542, 10.7769, 106.7009)
    # The spherical law of cosines, an independent formula for the same great circle.
    p1, p2, dl = math.radians(21.0285), math.radians(10.7769), math.radians(106.7009 - 105.8542)
    by_cosines = 6371.0088 * math.acos(
        math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
    )
    assert got == pytest.approx(by_cosines, abs=0.01)
    assert got == pytest.approx(1140, abs=5)


def test_distance_is_zero_to_itself_and_symmetric() -> None:
    assert distance_km(16.05, 108.2, 16.05, 108.2) == 0
    assert distance_km(16.05, 108.2, 10.0, 105.7) == pytest.approx(distance_km(10.0, 105.7, 16.05, 108.2))


def test_one_degree_of_latitude_is_about_111_km() -> None:
    assert distance_km(10.0, 106.0, 11.0, 106.0) == pytest.approx(111.2, abs=0.1)


def test_cells_split_at_multiples_of_the_cell_size_including_negative_coordinates() -> None:
    assert cell_of(21.05, 105.85) == (210, 1058)
    assert cell_of(-0.05, -0.05) == (-1, -1)
    assert cell_of(0.0, 0.0) == (0, 0)


def test_the_index_visits_a_ring_clipped_to_the_occupied_cells() -> None:
    grid = GridIndex([(21.0, 105.0), (21.55, 105.35)])
    rows, cols = range(grid.rows[0], grid.rows[1] + 1), range(grid.cols[0], grid.cols[1] + 1)
    for ci, cj in ((212, 1052), (200, 1040), (213, 1060)):
        for r in range(12):
            want = sorted(c for c in ring(ci, cj, r) if c[0] in rows and c[1] in cols)
            assert sorted(grid._ring_within_bounds(ci, cj, r)) == want


def test_a_ring_holds_the_cells_at_exactly_that_distance() -> None:
    assert list(ring(5, 5, 0)) == [(5, 5)]
    cells = set(ring(0, 0, 2))
    assert len(cells) == 16
    assert all(max(abs(i), abs(j)) == 2 for i, j in cells)


def test_the_bound_is_never_more_than_the_distance_to_a_point_outside_the_block() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        lat, lon = rng.uniform(8, 23), rng.uniform(102, 110)
        ci, cj = cell_of(lat, lon)
        r = rng.randint(0, 6)
        bound = outside_block_km(lat, lon, ci, cj, r)
        # A point just outside each side of the block.
        eps = 1e-9
        south, north = (ci - r) * CELL_DEGREES - eps, (ci + r + 1) * CELL_DEGREES + eps
        west, east = (cj - r) * CELL_DEGREES - eps, (cj + r + 1) * CELL_DEGREES + eps
        for plat, plon in (
            (south, lon),
            (north, lon),
            (lat, west),
            (lat, east),
            (rng.uniform(south, north), east),
        ):
            assert bound <= distance_km(lat, lon, plat, plon) + 1e-9


def test_vietnam_area_holds_the_islands_and_not_bangkok_or_manila() -> None:
    assert in_vietnam_area(10.2270, 103.9670)  # Phú Quốc
    assert in_vietnam_area(8.6500, 111.9200)  # Trường Sa
    assert not in_vietnam_area(13.7563, 100.5018)  # Bangkok
    assert not in_vietnam_area(14.5995, 120.9842)  # Manila
    assert not in_vietnam_area(0.0, 0.0)


def _catalogue(rng: random.Random, n: int) -> list[tuple[float, float]]:
    """Clustered points like the seeded catalogue, plus points exactly on cell edges and
    corners (multiples of the cell size) where rounding decides the cell."""
    centres = [(21.03, 105.85), (10.78, 106.70), (16.05, 108.20), (12.24, 109.19), (10.03, 105.77)]
    points = []
    for k in range(n):
        clat, clon = centres[k % len(centres)]
        points.append((clat + rng.gauss(0, 0.15), clon + rng.gauss(0, 0.15)))
    for k in range(60):
        clat, clon = centres[k % len(centres)]
        edge_lat = round(clat + rng.randint(-3, 3) * CELL_DEGREES, 1)
        edge_lon = round(clon + rng.randint(-3, 3) * CELL_DEGREES, 1)
        points += [(edge_lat, clon + rng.uniform(-0.3, 0.3)), (clat + rng.uniform(-0.3, 0.3), edge_lon)]
        points.append((edge_lat, edge_lon))
    return points


def _queries(rng: random.Random, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    anywhere = [(rng.uniform(8.5, 23), rng.uniform(102.5, 109.5)) for _ in range(100)]
    near = [(lat + rng.gauss(0, 0.05), lon + rng.gauss(0, 0.05)) for lat, lon in rng.sample(points, 100)]
    # Queries on cell edges, corners and a hair either side of them.
    edges = []
    for lat, lon in rng.sample(points, 40):
        e_lat, e_lon = round(lat, 1), round(lon, 1)
        for d in (0.0, 1e-12, -1e-12, 1e-7, -1e-7):
            edges += [(e_lat + d, lon), (lat, e_lon + d), (e_lat + d, e_lon - d)]
    return anywhere + near + edges + points[:50]  # and exactly on stores


def test_grid_search_equals_a_full_scan_on_random_points_and_cell_edges() -> None:
    rng = random.Random(2026)
    points = _catalogue(rng, 1000)
    grid = GridIndex(points)
    queries = _queries(rng, points)
    assert len(queries) > 800
    for lat, lon in queries:
        limit = rng.choice([1, 3, 10, 25])
        radius = rng.choice([math.inf, 2.0, 15.0, 80.0])
        got = grid.nearest(lat, lon, limit, radius)
        want = brute_force(points, lat, lon, limit, radius)
        assert [h.index for h in got] == [h.index for h in want], (lat, lon, limit, radius)
        assert [h.distance_km for h in got] == [h.distance_km for h in want]


def test_grid_search_with_a_filter_equals_a_full_scan_with_the_same_filter() -> None:
    rng = random.Random(11)
    points = _catalogue(rng, 800)
    grid = GridIndex(points)
    rare = set(rng.sample(range(len(points)), 12))  # e.g. the few stores open at 3 a.m.
    for lat, lon in _queries(rng, points)[:300]:
        got = grid.nearest(lat, lon, 5, math.inf, rare.__contains__)
        want = brute_force(points, lat, lon, 5, math.inf, rare.__contains__)
        assert [h.index for h in got] == [h.index for h in want]


def test_grid_search_stops_early_in_a_dense_city() -> None:
    rng = random.Random(3)
    points = _catalogue(rng, 1500)
    grid = GridIndex(points)
    grid.nearest(21.03, 105.85, 10)
    assert grid.rings_visited <= 3


def test_empty_catalogue_and_zero_limit_find_nothing() -> None:
    assert GridIndex([]).nearest(21.0, 105.8, 10) == []
    assert GridIndex([(21.0, 105.8)]).nearest(21.0, 105.8, 0) == []
