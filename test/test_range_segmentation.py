# Copyright 2026 pointcam_ros maintainers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""Range-image segmentation (issue #23): people by walls and cars come apart, cars stay whole."""

import math
import zlib

import numpy as np
from pointcam_ros.common.config import ConfigError, PipelineConfig
from pointcam_ros.perception import range_image
from pointcam_ros.perception.range_image import (
    beta_angle, dense_rank, direction_extents, is_range_scan, merge_pieces, neighbour_pairs,
    rectangle, rectangles)
from pointcam_ros.perception.segmentation import cluster_points, segment_scene, unique_inverse
import pytest
import torch

RANGE = PipelineConfig(segmentation='range')
VOXEL = PipelineConfig(segmentation='voxel')
MOUNT = 1.8  # m, sensor above the ground


def cast(boxes: list, beams: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """
    Scan axis-aligned boxes and a flat ground with an ideal spinning LiDAR at the origin.

    ``boxes``: (min xyz, max xyz) pairs in the sensor frame (ground at z = -MOUNT);
    ``beams`` elevations (deg). Returns the hits ``(M, 3)`` float32 and what each hit
    ``(M,)`` int (box index, -1 ground); rays that hit nothing within 80 m are dropped.
    """
    elevation = np.radians(beams)[:, None]
    azimuth = np.linspace(-math.pi, math.pi, columns, endpoint=False)[None, :]
    d = np.stack(np.broadcast_arrays(np.cos(elevation) * np.cos(azimuth),
                                     np.cos(elevation) * np.sin(azimuth),
                                     np.sin(elevation)), -1).reshape(-1, 3)
    best = np.full(len(d), np.inf)
    owner = np.full(len(d), -2)
    with np.errstate(divide='ignore', invalid='ignore'):
        ground = np.where(d[:, 2] < 0, -MOUNT / d[:, 2], np.inf)
        best, owner = np.where(ground < 80, ground, best), np.where(ground < 80, -1, owner)
        for k, (lo, hi) in enumerate(boxes):
            t1, t2 = (np.asarray(lo) - 0.0) / d, (np.asarray(hi) - 0.0) / d
            near = np.nanmax(np.minimum(t1, t2), axis=1)
            far = np.nanmin(np.maximum(t1, t2), axis=1)
            hit = (near <= far) & (near > 0) & (near < best)
            best, owner = np.where(hit, near, best), np.where(hit, k, owner)
    keep = owner > -2
    return (d[keep] * best[keep, None]).astype(np.float32), owner[keep]


def hdl32() -> tuple[np.ndarray, int]:
    """Beams (deg) and columns of an HDL-32E-like sensor."""
    return np.linspace(10.67, -30.67, 32), 2170


def box(x: float, y: float, length: float, width: float, height: float) -> tuple:
    """Return an upright box standing on the ground, centred on ``x, y``."""
    return ((x - length / 2, y - width / 2, -MOUNT), (x + length / 2, y + width / 2,
                                                      -MOUNT + height))


def found_as_one(labels: np.ndarray, truth: np.ndarray) -> bool:
    """Whether the cluster holding most of ``truth`` covers it with point IoU >= 0.7."""
    ids = labels[truth]
    ids = ids[ids >= 0]
    if len(ids) == 0:
        return False
    cluster = labels == np.bincount(ids).argmax()
    return (cluster & truth).sum() / (cluster | truth).sum() >= 0.7


def test_two_people_in_front_of_a_wall_come_apart():
    """Two people 0.5 m apart, 0.4 m in front of a 12 m wall, 10 m away: three objects."""
    people = [box(9.4, -0.45, 0.4, 0.5, 1.75), box(9.4, 0.45, 0.4, 0.5, 1.75)]
    wall = box(10.0, 0.0, 0.4, 12.0, 3.0)
    xyz, owner = cast(people + [wall], *hdl32())
    voxel = segment_scene(xyz, VOXEL).labels
    assert not found_as_one(voxel, owner == 0)  # today: the people are part of the wall
    labels = segment_scene(xyz, RANGE).labels
    for k in range(3):
        assert found_as_one(labels, owner == k), k
    assert len({np.bincount(labels[(owner == k) & (labels >= 0)]).argmax()
                for k in range(3)}) == 3


def test_a_person_at_a_car_door_comes_apart_and_the_car_stays_whole():
    """A person 0.3 m beside a car's side, 8 m away; the car (body and cabin) is one object."""
    body = box(8.0, 3.0, 4.5, 1.8, 1.0)
    cabin = box(7.8, 3.0, 2.4, 1.6, 1.5)
    person = box(8.8, 1.75, 0.4, 0.4, 1.75)  # at the driver's door, facing the sensor
    xyz, owner = cast([body, cabin, person], *hdl32())
    car = (owner == 0) | (owner == 1)
    labels = segment_scene(xyz, RANGE).labels
    assert found_as_one(labels, owner == 2)
    assert found_as_one(labels, car)
    assert not found_as_one(segment_scene(xyz, VOXEL).labels, owner == 2)


def test_a_sparse_far_car_stays_whole():
    """
    A car at 32 m seen by a VLP-16 (2 degree beams: two rings on it) is not cut up.

    Its side is seen at a 3 degree slant, below the angle criterion's 10: the returns
    there are cut off the rear and must be joined back (crumbs), not lost.
    """
    car = [box(32.0, 2.6, 4.5, 1.8, 1.0), box(31.8, 2.6, 2.4, 1.6, 1.5)]
    xyz, owner = cast(car, np.linspace(15.0, -15.0, 16), 1800)
    truth = owner >= 0
    assert 30 <= truth.sum() < 120
    labels = segment_scene(xyz, RANGE).labels
    assert found_as_one(labels, truth)


def test_clusters_do_not_depend_on_the_point_order():
    """No ring order is needed (a KITTI .bin, dropped NaN rows): shuffled, same clusters."""
    people = [box(9.4, -0.45, 0.4, 0.5, 1.75), box(9.4, 0.45, 0.4, 0.5, 1.75)]
    xyz, _ = cast(people + [box(10.0, 0.0, 0.4, 12.0, 3.0)], *hdl32())
    order = np.random.default_rng(0).permutation(len(xyz))
    labels = segment_scene(xyz, RANGE).labels
    shuffled = np.empty_like(labels)
    shuffled[order] = segment_scene(xyz[order], RANGE).labels
    pairs = set(zip(labels.tolist(), shuffled.tolist()))  # the same partition
    assert len(pairs) == len(set(labels.tolist())) == len(set(shuffled.tolist()))


def test_a_cloud_that_is_not_a_scan_keeps_the_voxel_clusters():
    """A sparse cloud (no rings: returns ~1.5 degrees apart, a downsampled map): nothing is cut."""
    rng = np.random.default_rng(1)
    xyz = (rng.uniform(-1.5, 1.5, (150, 3)) + [20.0, 0.0, 0.0]).astype(np.float32)
    source, _, along = neighbour_pairs(xyz)
    assert not is_range_scan(len(xyz), source, along)
    height = np.full(len(xyz), 1.0, np.float32)
    voxel, count = cluster_points(xyz, height, VOXEL, 'voxel')
    ranged, ranged_count = cluster_points(xyz, height, RANGE)
    assert ranged_count == count
    np.testing.assert_array_equal(ranged, voxel)


def test_beta_is_large_on_a_face_and_small_between_a_person_and_the_wall_behind():
    a = np.array([[10.0, 0.0, 0.0], [10.0, 0.035, 0.0], [10.4, 0.0364, 0.0]], np.float32)
    face, edge = beta_angle(a, np.array([0, 0]), np.array([1, 2]))
    assert face > math.radians(80) and edge < range_image.THETA


def test_merging_joins_crumbs_and_car_parts_but_never_a_person():
    """Pieces of one cluster: a car's two sides, a person, crumbs; nothing across clusters."""
    rng = np.random.default_rng(2)

    def blob(center, size, n):
        return (np.asarray(center) + rng.uniform(-0.5, 0.5, (n, 3)) * size).astype(np.float32)

    parts = [blob((8, 0, 0.7), (2.0, 1.8, 1.4), 80),  # the car's rear half
             blob((10, 0, 0.7), (2.0, 1.8, 1.4), 80),  # its front half
             blob((10, 1.35, 0.9), (0.4, 0.4, 1.7), 60),  # a person by its door
             blob((11.2, 0, 0.5), (0.2, 0.2, 0.2), 4),  # crumbs by the bonnet
             blob((11.0, 5, 0.7), (2.0, 1.8, 1.4), 80)]  # another cluster, close by
    xyz = np.concatenate(parts)
    height = xyz[:, 2] + np.float32(0.1)
    pieces = np.repeat(np.arange(5), [len(p) for p in parts])
    parent = np.where(pieces == 4, 1, 0)
    merged, count = merge_pieces(xyz, height, pieces, 5, parent, 15,
                                 (np.zeros(0, np.int64), np.zeros(0, np.int64)))
    first = [merged[pieces == k][0] for k in range(5)]
    assert first[0] == first[1] == first[3]  # the car and its crumbs
    assert len({first[0], first[2], first[4]}) == 3 == count


def test_torch_gives_the_numpy_clusters_with_the_range_design():
    xyz, _ = cast([box(8.0, 3.0, 4.5, 1.8, 1.0), box(7.8, 3.0, 2.4, 1.6, 1.5),
                   box(8.8, 1.75, 0.4, 0.4, 1.75), box(10.0, -2.0, 0.4, 12.0, 3.0)], *hdl32())
    expected = segment_scene(xyz, RANGE)
    got = segment_scene(torch.from_numpy(xyz), RANGE)
    assert got.num_objects == expected.num_objects >= 3
    np.testing.assert_array_equal(got.labels.numpy(), expected.labels)


def test_an_unknown_design_is_refused_with_the_known_ones():
    with pytest.raises(ConfigError, match='voxel, range'):
        PipelineConfig(segmentation='angles')
    with pytest.raises(ValueError, match='range-nomerge'):
        cluster_points(np.zeros((3, 3), np.float32), np.zeros(3, np.float32), VOXEL, 'x')


def street() -> tuple[np.ndarray, np.ndarray]:
    """Scan a street with an HDL-32E: a facade and two people, parked cars, a cyclist, a tree."""
    boxes = [box(14.0, 0.0, 0.4, 24.0, 3.0),  # a facade
             box(13.5, -3.0, 0.4, 0.5, 1.75), box(13.5, -2.3, 0.4, 0.5, 1.7),  # people by it
             box(6.0, -5.0, 4.5, 1.8, 1.0), box(5.8, -5.0, 2.4, 1.6, 1.5),  # a car
             box(10.6, -5.0, 4.5, 1.8, 1.0), box(10.4, -5.0, 2.4, 1.6, 1.5),  # parked behind
             box(8.3, -3.7, 1.8, 0.6, 1.7),  # a cyclist beside them
             box(-8.0, 6.0, 0.3, 0.3, 2.5), ((-9.5, 4.5, 0.7), (-6.5, 7.5, 2.7)),  # a tree
             box(-7.0, 4.2, 0.4, 0.4, 1.8),  # a person under it
             box(-12.0, -6.0, 5.0, 2.0, 2.8), box(-6.0, -6.3, 4.2, 1.8, 1.4)]  # a van, a car
    return cast(boxes, *hdl32())


@pytest.mark.parametrize('config, objects, sizes, crc', [
    (VOXEL, 6, [1179, 913, 1849, 1248, 30, 51], 1042881015),
    (RANGE, 7, [995, 913, 1849, 184, 1248, 30, 51], 708822803)])
def test_the_labels_are_those_of_the_reference_implementation(config, objects, sizes, crc):
    """
    Parity: the faster code gives the labels of the first ``range`` implementation.

    ``sizes`` and the CRC-32 of the labels (little-endian int32) were recorded with the
    code of 2026-12-04 (before the sorts were shared, the merge loop was trimmed and the
    unique calls were replaced); bench/profile_segmentation.py --check-reference does the
    same on simulated scans of every sensor.
    """
    xyz, _ = street()
    assert len(xyz) == 53142
    result = segment_scene(xyz, config)
    assert result.num_objects == objects
    assert np.bincount(result.labels[result.labels >= 0]).tolist() == sizes
    assert zlib.crc32(result.labels.astype('<i4').tobytes()) == crc


def test_the_fast_helpers_equal_their_plain_numpy_forms():
    """dense_rank and unique_inverse are np.unique; extents, rectangle and beta as written."""
    rng = np.random.default_rng(3)
    values = rng.integers(0, 50, 1000) * 7
    _, inverse = np.unique(values, return_inverse=True)
    np.testing.assert_array_equal(dense_rank(values, 350), inverse.reshape(-1))
    keys = rng.integers(-2 ** 40, 2 ** 40, 1000)
    keys[::3] = keys[0]
    unique, inverse = np.unique(keys, return_inverse=True)
    got_unique, got_inverse = unique_inverse(keys)
    np.testing.assert_array_equal(got_unique, unique)
    np.testing.assert_array_equal(got_inverse, inverse.reshape(-1))
    xy = rng.normal(0.0, 5.0, (5000, 2)).astype(np.float32)  # more rows than one product
    group = rng.integers(0, 40, len(xy))
    lo, hi = direction_extents(xy, group, 40)
    angles = np.arange(range_image.DIRECTIONS) * (math.pi / range_image.DIRECTIONS)
    projected = xy @ np.stack([np.cos(angles), np.sin(angles)]).astype(np.float32)
    for k in (0, 17, 39):
        np.testing.assert_array_equal(lo[k], projected[group == k].min(axis=0))
        np.testing.assert_array_equal(hi[k], projected[group == k].max(axis=0))
    length, width = rectangles(lo, hi)
    assert [rectangle(lo[k], hi[k]) for k in range(40)] == list(zip(length.tolist(),
                                                                    width.tolist()))
    xyz, _ = street()
    source, target, _ = neighbour_pairs(xyz)
    points = xyz.astype(np.float64)
    distance = np.sqrt(np.einsum('ij,ij->i', points, points))
    dot = np.einsum('ij,ij->i', points[source], points[target])
    cos = np.clip(dot / np.maximum(distance[source] * distance[target], 1e-300), -1.0, 1.0)
    d1 = np.maximum(distance[source], distance[target])
    d2 = np.minimum(distance[source], distance[target])
    expected = np.arctan2(d2 * np.sqrt(1.0 - cos * cos), d1 - d2 * cos)
    # The same bits with this numpy (its einsum sums three terms as (x + z) + y); any sum order
    # stays within rounding.
    np.testing.assert_allclose(beta_angle(xyz, source, target), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize('copies', [1, 2, 3, 6])
def test_repeated_returns_stay_one_surface(copies):
    # Merged clouds and dual returns repeat points. A repeated point pairs with its copies
    # (beta of a pair that coincides is 90 degrees), so a wall seen with every return three
    # or more times is still one wall, not dozens of pieces.
    azimuth, elevation = np.meshgrid(np.radians(np.arange(-10, 10, 0.2)),
                                     np.radians(np.arange(-5, 5, 2.0)))
    distance = 10.0 / np.cos(azimuth)
    wall = np.stack([distance * np.cos(elevation) * np.cos(azimuth),
                     distance * np.cos(elevation) * np.sin(azimuth),
                     distance * np.sin(elevation)], axis=-1).reshape(-1, 3).astype(np.float32)
    points = np.repeat(wall, copies, axis=0)
    height = (points[:, 2] + 1.8).astype(np.float32)
    _, count = range_image.range_clusters(points, height, np.zeros(len(points), np.int64), 1,
                                          15, wide=-1.0, merge=False)
    assert count == 1
    if copies > 1:  # a point and its copy
        assert beta_angle(points, np.array([0]), np.array([1]))[0] == pytest.approx(math.pi / 2)


def test_the_rejoin_tries_at_most_max_merge_pairs(monkeypatch):
    # Noise cut into many pieces has millions of candidate pairs; the re-join tries the
    # closest MAX_MERGE_PAIRS. A scene far under the cap is not changed by it.
    people = [box(9.4, -0.45, 0.4, 0.5, 1.75), box(9.4, 0.45, 0.4, 0.5, 1.75)]
    xyz, _ = cast(people + [box(10.0, 0.0, 0.4, 12.0, 3.0), box(15.0, 6.0, 4.5, 1.8, 1.5)],
                  *hdl32())
    capped = segment_scene(xyz, RANGE).labels
    cap = range_image.MAX_MERGE_PAIRS
    tried = []
    original = range_image.candidate_pairs

    def counted(*args):
        pairs = original(*args)
        tried.append(len(pairs))
        return pairs

    monkeypatch.setattr(range_image, 'candidate_pairs', counted)
    monkeypatch.setattr(range_image, 'MAX_MERGE_PAIRS', 10 ** 9)
    assert np.array_equal(segment_scene(xyz, RANGE).labels, capped)
    assert 0 < max(tried) < cap
    # A car in two halves joins when one pair may be tried, not when none may.
    rng = np.random.default_rng(2)
    halves = [(np.asarray(c) + rng.uniform(-0.5, 0.5, (80, 3)) * (2.0, 1.8, 1.4))
              .astype(np.float32) for c in ((8, 0, 0.7), (10, 0, 0.7))]
    car = np.concatenate(halves)
    pieces, parent = np.repeat(np.arange(2), 80), np.zeros(160, np.int64)
    cut = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    for limit, count in ((1, 1), (0, 2)):
        monkeypatch.setattr(range_image, 'MAX_MERGE_PAIRS', limit)
        assert merge_pieces(car, car[:, 2] + np.float32(0.1), pieces, 2, parent, 15, cut)[1] \
            == count
