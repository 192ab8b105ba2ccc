"""Great-circle distance and a grid of latitude/longitude cells for nearest-point search.

The store has no geo queries, so the nearest stores are found in code: stores are kept per
grid cell and the search visits rings of cells around the query's cell, widening until the
`limit` best found are closer than anything outside the visited block can be (a lower bound
computed from the block's edges), or until the block covers every stored point. Distances
are then exact (haversine); the grid only decides what is looked at.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

EARTH_RADIUS_KM = 6371.0088  # mean radius (IUGG)
CELL_DEGREES = 0.1  # ~11 km: a city's stores fall in a few cells
# The bound is computed in floating point from cell edges; a point a rounding error past an
# edge must never be treated as farther than it is.
_SLACK_KM = 1e-6

# Mainland Vietnam, its islands (Phú Quốc, Côn Đảo, Hoàng Sa, Trường Sa) and a margin around
# them; a phone reporting coordinates beyond this is not in Vietnam (or its GPS is wrong).
VIETNAM_AREA = (6.0, 24.5, 101.0, 118.0)  # lat min, lat max, lon min, lon max


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine), accurate to metres at these distances."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def in_vietnam_area(lat: float, lon: float) -> bool:
    lat_min, lat_max, lon_min, lon_max = VIETNAM_AREA
    return lat_min <= lat <= lat_max and lon_min <= lon <= lon_max


def cell_of(lat: float, lon: float, size: float = CELL_DEGREES) -> tuple[int, int]:
    return math.floor(lat / size), math.floor(lon / size)


def ring(ci: int, cj: int, r: int) -> Iterator[tuple[int, int]]:
    """The cells at Chebyshev distance exactly `r` from (ci, cj)."""
    if r == 0:
        yield ci, cj
        return
    for j in range(cj - r, cj + r + 1):
        yield ci - r, j
        yield ci + r, j
    for i in range(ci - r + 1, ci + r):
        yield i, cj - r
        yield i, cj + r


def outside_block_km(lat: float, lon: float, ci: int, cj: int, r: int, size: float = CELL_DEGREES) -> float:
    """A lower bound of the distance from (lat, lon) to any point outside the block of cells
    within `r` of (ci, cj). North/south: a latitude gap is at least that arc. East/west: the
    distance to a meridian `g` degrees away is asin(cos(lat) * sin(g)) (cross-track)."""
    lat_gap = min(lat - (ci - r) * size, (ci + r + 1) * size - lat)
    lon_gap = min(lon - (cj - r) * size, (cj + r + 1) * size - lon)
    by_lat = EARTH_RADIUS_KM * math.radians(max(0.0, lat_gap))
    g = math.radians(max(0.0, lon_gap))
    by_lon = (
        EARTH_RADIUS_KM * math.asin(min(1.0, math.cos(math.radians(lat)) * math.sin(g)))
        if g < math.pi / 2
        else math.inf
    )
    return max(0.0, min(by_lat, by_lon) - _SLACK_KM)


@dataclass(frozen=True)
class Hit:
    distance_km: float
    index: int  # position in the points the index was built from


class GridIndex:
    """Points (lat, lon) bucketed by cell, searched by widening rings."""

    def __init__(self, points: Sequence[tuple[float, float]], size: float = CELL_DEGREES) -> None:
        self.points = list(points)
        self.size = size
        # Per point what the haversine needs of it, computed once: the search's inner loop
        # is distance_km inlined, with the same operations in the same order (same floats).
        self._prepared = [(math.radians(lat), math.cos(math.radians(lat)), lon) for lat, lon in self.points]
        self.cells: dict[tuple[int, int], list[int]] = {}
        for n, (lat, lon) in enumerate(self.points):
            self.cells.setdefault(cell_of(lat, lon, size), []).append(n)
        rows = [c[0] for c in self.cells] or [0]
        cols = [c[1] for c in self.cells] or [0]
        self.rows, self.cols = (min(rows), max(rows)), (min(cols), max(cols))
        self.rings_visited = 0  # of the last search (for tests and tuning)

    def _ring_within_bounds(self, ci: int, cj: int, r: int) -> Iterator[tuple[int, int]]:
        """`ring(ci, cj, r)` without the cells beyond the occupied rows and columns (empty
        anyway): a query far from most stores widens many rings."""
        (r0, r1), (c0, c1) = self.rows, self.cols
        top, bottom, left, right = ci - r, ci + r, cj - r, cj + r
        for i in (top, bottom) if r else (top,):
            if r0 <= i <= r1:
                for j in range(max(left, c0), min(right, c1) + 1):
                    yield i, j
        if r:
            for j in (left, right):
                if c0 <= j <= c1:
                    for i in range(max(top + 1, r0), min(bottom - 1, r1) + 1):
                        yield i, j

    def nearest(
        self,
        lat: float,
        lon: float,
        limit: int,
        radius_km: float = math.inf,
        accept: Callable[[int], bool] | None = None,
    ) -> list[Hit]:
        """The `limit` nearest accepted points within `radius_km`, nearest first (ties by
        position, so the answer is the same as a full scan's)."""
        if not self.points or limit <= 0:
            return []
        ci, cj = cell_of(lat, lon, self.size)
        widest = max(ci - self.rows[0], self.rows[1] - ci, cj - self.cols[0], self.cols[1] - cj, 0)
        found: list[Hit] = []
        p1 = math.radians(lat)
        cos_p1 = math.cos(p1)
        sin, asin, sqrt, radians, prepared = math.sin, math.asin, math.sqrt, math.radians, self._prepared
        r = 0
        while True:
            for cell in self._ring_within_bounds(ci, cj, r):
                for n in self.cells.get(cell, ()):
                    if accept is not None and not accept(n):
                        continue
                    p2, cos_p2, plon = prepared[n]
                    h = sin((p2 - p1) / 2) ** 2 + cos_p1 * cos_p2 * sin(radians(plon - lon) / 2) ** 2
                    d = 2 * EARTH_RADIUS_KM * asin(min(1.0, sqrt(h)))
                    if d <= radius_km:
                        found.append(Hit(d, n))
            self.rings_visited = r + 1
            if r >= widest:
                break
            bound = outside_block_km(lat, lon, ci, cj, r, self.size)
            if bound > radius_km:
                break
            if len(found) >= limit:
                found.sort(key=_order)
                del found[limit:]
                if found[-1].distance_km < bound:
                    break
            r += 1
        found.sort(key=_order)
        return found[:limit]


def _order(hit: Hit) -> tuple[float, int]:
    return hit.distance_km, hit.index


def brute_force(
    points: Sequence[tuple[float, float]],
    lat: float,
    lon: float,
    limit: int,
    radius_km: float = math.inf,
    accept: Callable[[int], bool] | None = None,
) -> list[Hit]:
    """Every point measured: the reference the grid search must equal."""
    hits = [
        Hit(d, n)
        for n, (plat, plon) in enumerate(points)
        if (accept is None or accept(n)) and (d := distance_km(lat, lon, plat, plon)) <= radius_km
    ]
    hits.sort(key=_order)
    return hits[:limit]


def map_url(lat: float, lon: float) -> str:
    return f"https://www.google.com/maps/search/?api=1&query={lat:.6f},{lon:.6f}"
