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

"""PointCloud2 <-> numpy conversion on the layouts real drivers publish."""

import dataclasses
import struct
import warnings

from hypothesis import given, HealthCheck, settings, strategies as st
import numpy as np
from pointcam_ros.formats import _pc2_backend
from pointcam_ros.formats.cloud_io import (
    CloudFormatError, DATATYPE_TO_NUMPY, FieldSpec, FLOAT32, FLOAT64, INT32, INT8, NO_OBJECT,
    pack_cloud, PackedCloud, read_cloud, saliency_cloud, SALIENCY_FIELDS, UINT16, UINT8,
    UNKNOWN)
from pointcam_ros.formats.sensor_layouts import LIVOX_CUSTOM, OUSTER_ORIGINAL, VELODYNE_XYZIRT
import pytest


def _scan(num, seed=0, nan_every=0):
    rng = np.random.default_rng(seed)
    xyz = (rng.normal(size=(num, 3)) * 15).astype(np.float32)
    if nan_every:
        xyz[::nan_every] = np.nan
    return xyz, rng


def test_velodyne_unaligned_time_field_is_read_exactly():
    xyz, rng = _scan(160, nan_every=5)
    ring = (np.arange(160) % 16).astype(np.uint16)
    time = rng.random(160).astype(np.float32)
    cloud = pack_cloud({'x': xyz[:, 0], 'y': xyz[:, 1], 'z': xyz[:, 2], 'ring': ring,
                        'time': time}, VELODYNE_XYZIRT.fields, VELODYNE_XYZIRT.point_step,
                       height=16)
    assert cloud.point_step == 22 and len(cloud.data) == 160 * 22
    # Check the bytes themselves: the float at offset 18 of point 7.
    assert struct.unpack_from('<f', cloud.data, 7 * 22 + 18)[0] == time[7]
    points = read_cloud(cloud, ['ring', 'time'])
    valid = np.isfinite(xyz).all(axis=1)
    np.testing.assert_array_equal(points.index, np.flatnonzero(valid))
    np.testing.assert_array_equal(points.xyz, xyz[valid])
    np.testing.assert_array_equal(points.extras['time'], time[valid])
    np.testing.assert_array_equal(points.extras['ring'], ring[valid])
    assert points.num_points == 160


def test_ouster_organized_48_byte_layout_with_padded_rows():
    height, width = 8, 32
    xyz, rng = _scan(height * width, nan_every=3)
    rng_field = rng.integers(0, 2**31, height * width).astype(np.uint32)
    cloud = pack_cloud({'x': xyz[:, 0], 'y': xyz[:, 1], 'z': xyz[:, 2], 'range': rng_field},
                       OUSTER_ORIGINAL.fields, 48, height=height, row_step=48 * width + 16,
                       fill_value=7)
    points = read_cloud(cloud, ['range', 'reflectivity'])
    valid = np.isfinite(xyz).all(axis=1)
    np.testing.assert_array_equal(points.xyz, xyz[valid])
    np.testing.assert_array_equal(points.extras['range'], rng_field[valid])
    assert (points.extras['reflectivity'] == 7).all()
    # Index is row-major over (height, width): point (r, c) -> r * width + c.
    np.testing.assert_array_equal(points.index, np.flatnonzero(valid))


def test_livox_packed_float64_timestamp():
    xyz, rng = _scan(50)
    stamp = rng.random(50) * 1e9
    cloud = pack_cloud({'x': xyz[:, 0], 'y': xyz[:, 1], 'z': xyz[:, 2], 'timestamp': stamp},
                       LIVOX_CUSTOM.fields, 26)
    points = read_cloud(cloud, ['timestamp'])
    np.testing.assert_array_equal(points.xyz, xyz)
    assert points.extras['timestamp'].dtype == np.float64
    np.testing.assert_array_equal(points.extras['timestamp'], stamp)


def test_big_endian_float64_xyz_and_count_greater_than_one():
    fields = [FieldSpec('normal', 0, FLOAT32, 3), FieldSpec('x', 12, FLOAT64),
              FieldSpec('y', 20, FLOAT64), FieldSpec('z', 28, FLOAT64)]
    xyz = np.array([[1.5, -2.25, 3e10], [np.inf, 0, 0], [4, 5, 6]], dtype=np.float64)
    normal = np.arange(9, dtype=np.float32).reshape(3, 3)
    cloud = pack_cloud({'x': xyz[:, 0], 'y': xyz[:, 1], 'z': xyz[:, 2], 'normal': normal},
                       fields, 40, is_bigendian=True)
    assert struct.unpack_from('>d', cloud.data, 12)[0] == 1.5
    points = read_cloud(cloud, ['normal'])
    np.testing.assert_array_equal(points.index, [0, 2])
    np.testing.assert_array_equal(points.xyz, xyz[[0, 2]].astype(np.float32))
    np.testing.assert_array_equal(points.extras['normal'], normal[[0, 2]])


def test_all_nan_cloud_gives_no_points_but_keeps_count():
    xyz = np.full((10, 3), np.nan, np.float32)
    cloud = pack_cloud({'x': xyz[:, 0], 'y': xyz[:, 1], 'z': xyz[:, 2]},
                       VELODYNE_XYZIRT.fields, 22)
    points = read_cloud(cloud)
    assert points.xyz.shape == (0, 3) and points.index.shape == (0,)
    assert points.num_points == 10


def test_max_points_counts_every_point_before_decoding():
    # width x height, NaN points included: a cloud of a million points with ten finite ones
    # is refused before its million rows are copied and masked.
    xyz = np.full((1000, 3), np.nan, np.float32)
    xyz[:10] = 1.0
    cloud = pack_cloud({'x': xyz[:, 0], 'y': xyz[:, 1], 'z': xyz[:, 2]},
                       VELODYNE_XYZIRT.fields, 22)
    with pytest.raises(CloudFormatError, match='1000 points .*max_input_points = 999') as caught:
        read_cloud(cloud, max_points=999)
    assert caught.value.kind == 'too_many_points'
    assert read_cloud(cloud, max_points=1000).xyz.shape == (10, 3)
    assert read_cloud(cloud).num_points == 1000


def test_reads_a_real_rclpy_message():
    from sensor_msgs.msg import PointCloud2, PointField
    from pointcam_ros.ros.ros_msgs import to_ros_cloud
    xyz, _ = _scan(64, nan_every=4)
    packed = pack_cloud({'x': xyz[:, 0], 'y': xyz[:, 1], 'z': xyz[:, 2]},
                        VELODYNE_XYZIRT.fields, 22, height=4)
    msg = to_ros_cloud(packed, None)
    assert isinstance(msg, PointCloud2) and isinstance(msg.fields[0], PointField)
    points = read_cloud(msg)
    valid = np.isfinite(xyz).all(axis=1)
    np.testing.assert_array_equal(points.xyz, xyz[valid])


def test_saliency_cloud_layout_and_values():
    xyz, rng = _scan(20)
    sal = rng.random(20).astype(np.float32)
    labels = rng.integers(-1, 6, 20).astype(np.int32)
    ids = rng.integers(-1, 4, 20).astype(np.int32)
    out = saliency_cloud(xyz, sal, labels, ids)
    assert [f.name for f in out.fields] == ['x', 'y', 'z', 'intensity', 'label', 'object_id']
    assert out.height == 1 and out.width == 20 and out.row_step == 20 * out.point_step
    back = read_cloud(out, ['intensity', 'label', 'object_id'])
    np.testing.assert_array_equal(back.xyz, xyz)
    np.testing.assert_array_equal(back.extras['intensity'], sal)
    np.testing.assert_array_equal(back.extras['label'], labels)
    np.testing.assert_array_equal(back.extras['object_id'], ids)
    assert NO_OBJECT == -1


def test_saliency_cloud_rejects_mismatched_shapes():
    xyz, _ = _scan(5)
    with pytest.raises(ValueError, match='saliency has shape'):
        saliency_cloud(xyz, np.zeros(4, np.float32), np.zeros(5, np.int32),
                       np.zeros(5, np.int32))


def test_backends_agree_with_our_reader():
    """sensor_msgs_py / pointcloud2 read_points gives the same values as read_cloud."""
    import pointcloud2
    xyz, rng = _scan(300, nan_every=7)
    cloud = pack_cloud({'x': xyz[:, 0], 'y': xyz[:, 1], 'z': xyz[:, 2],
                        'intensity': rng.random(300).astype(np.float32)},
                       OUSTER_ORIGINAL.fields, 48, height=3)
    ours = read_cloud(cloud, ['intensity'])
    from pointcam_ros.ros.ros_msgs import to_ros_cloud
    msg = to_ros_cloud(cloud, None)  # sensor_msgs_py insists on a real message
    for reader in {_pc2_backend.read_points, pointcloud2.read_points}:
        theirs = reader(msg, field_names=['x', 'y', 'z', 'intensity'], skip_nans=True)
        np.testing.assert_array_equal(
            np.stack([theirs['x'], theirs['y'], theirs['z']], axis=1), ours.xyz)
        np.testing.assert_array_equal(theirs['intensity'], ours.extras['intensity'])


# --- malformed messages -----------------------------------------------------------------

def _good():
    xyz, _ = _scan(12)
    return pack_cloud({'x': xyz[:, 0], 'y': xyz[:, 1], 'z': xyz[:, 2]},
                      VELODYNE_XYZIRT.fields, 22, height=3)


@pytest.mark.parametrize('change, message', [
    (lambda c: dataclasses.replace(c, fields=c.fields[1:]), 'no field x'),
    (lambda c: dataclasses.replace(c, data=c.data[:-1]), 'shorter than row_step'),
    (lambda c: dataclasses.replace(c, point_step=20), 'past point_step'),
    (lambda c: dataclasses.replace(
        c, fields=[c.fields[0]._replace(datatype=9)] + c.fields[1:]), 'unknown datatype 9'),
    (lambda c: dataclasses.replace(c, width=0, row_step=0), '0 points but 264 data bytes'),
    (lambda c: dataclasses.replace(c, height=0), '0 points but 264 data bytes'),
    (lambda c: dataclasses.replace(c, width=-1), 'negative size'),
    (lambda c: dataclasses.replace(
        c, fields=c.fields[:1] + [c.fields[1]._replace(offset=2)] + c.fields[2:]),
     r"fields 'x' \(bytes 0..3\) and 'y' \(bytes 2..5\) overlap"),
    (lambda c: dataclasses.replace(
        c, fields=c.fields[:5] + [c.fields[5]._replace(offset=19)]), 'past point_step'),
    (lambda c: dataclasses.replace(c, row_step=c.row_step - 1), 'row_step'),
    (lambda c: dataclasses.replace(
        c, fields=c.fields + [c.fields[0]]), 'appears twice'),
    (lambda c: dataclasses.replace(
        c, fields=[c.fields[0]._replace(datatype=UINT16)] + c.fields[1:]), "field 'x' must be"),
    (lambda c: dataclasses.replace(
        c, fields=[c.fields[0]._replace(count=0)] + c.fields[1:]), 'count 0'),
])
def test_malformed_messages_raise_cloud_format_error(change, message):
    with pytest.raises(CloudFormatError, match=message):
        read_cloud(change(_good()))


def test_overlapping_float64_x_and_y_are_refused():
    xyz, _ = _scan(4)
    fields = [FieldSpec('x', 0, FLOAT64), FieldSpec('y', 8, FLOAT64), FieldSpec('z', 16, FLOAT64)]
    good = pack_cloud({'x': xyz[:, 0], 'y': xyz[:, 1], 'z': xyz[:, 2]}, fields, 24)
    np.testing.assert_array_equal(read_cloud(good).xyz, xyz)
    bad = dataclasses.replace(good, fields=[fields[0], fields[1]._replace(offset=4), fields[2]])
    with pytest.raises(CloudFormatError, match=r"fields 'x' \(bytes 0..7\) and 'y' \(bytes "
                       r'4..11\) overlap'):
        read_cloud(bad)
    same = dataclasses.replace(good, fields=[*fields, FieldSpec('intensity', 16, UINT8)])
    with pytest.raises(CloudFormatError, match="'intensity' .*'z' .*overlap|'z' .*'intensity'"):
        read_cloud(same)


def _empty(height, width):
    return PackedCloud(height=height, width=width, fields=list(VELODYNE_XYZIRT.fields),
                       is_bigendian=False, point_step=22, row_step=22 * width, data=b'',
                       is_dense=True)


@pytest.mark.parametrize('height, width', [(1, 0), (0, 0), (0, 1024), (16, 0)])
def test_an_empty_cloud_reads_as_zero_points(height, width):
    points = read_cloud(_empty(height, width), ['intensity', 'ring'])
    assert points.xyz.shape == (0, 3) and points.xyz.dtype == np.float32
    assert points.index.shape == (0,) and points.index.dtype == np.int64
    assert points.num_points == 0
    assert points.extras['ring'].dtype == np.uint16 and points.extras['ring'].shape == (0,)
    with pytest.raises(CloudFormatError, match="'reflectivity' is not in the cloud"):
        read_cloud(_empty(height, width), ['reflectivity'])


def test_an_empty_rclpy_message_reads_as_zero_points():
    from pointcam_ros.ros.ros_msgs import to_ros_cloud
    msg = to_ros_cloud(_empty(1, 0), None)
    assert msg.width == 0 and len(msg.data) == 0
    assert read_cloud(msg).xyz.shape == (0, 3)


def test_saliency_cloud_of_zero_points_round_trips():
    points = read_cloud(_empty(1, 0))
    out = saliency_cloud(points.xyz, np.zeros(0, np.float32), np.zeros(0, np.int32),
                         np.zeros(0, np.int32))
    assert out.width == 0 and out.height == 1 and out.data == b'' and out.row_step == 0
    assert [f.name for f in out.fields] == [f.name for f in SALIENCY_FIELDS]
    back = read_cloud(out, ['intensity', 'label', 'object_id'])
    assert back.xyz.shape == (0, 3) and back.extras['label'].dtype == np.int32


def test_the_pipeline_answers_an_empty_cloud_with_an_empty_saliency_cloud(tiny_model):
    from pointcam_ros.common.config import PipelineConfig
    from pointcam_ros.formats.markers import DELETEALL
    from pointcam_ros.formats.scan_io import explain_cloud
    from pointcam_ros.perception.pipeline import ScenePipeline
    pipeline = ScenePipeline(PipelineConfig(model_path=tiny_model, device='cpu'))
    scan = explain_cloud(_empty(1, 0), pipeline.process)
    result, out = scan.result, scan.cloud
    assert result.objects == [] and result.saliency.shape == (0,)
    assert [marker.action for marker in scan.markers] == [DELETEALL]  # clears the last scan
    assert out.width == 0 and read_cloud(out).num_points == 0


@pytest.mark.parametrize('layout', ['contiguous', 'scattered', 'big-endian'])
def test_float64_beyond_float32_is_refused_quietly(layout, capfd):
    xyz = np.array([[1.0, 2.0, 3.0], [np.nan, 0, 0], [4.0, -1e300, 6.0], [np.inf, 1, 1]])
    if layout == 'scattered':
        fields = [FieldSpec('z', 0, FLOAT64), FieldSpec('i', 8, FLOAT32),
                  FieldSpec('y', 12, FLOAT64), FieldSpec('x', 20, FLOAT64)]
        step = 28
    else:
        fields = [FieldSpec('x', 0, FLOAT64), FieldSpec('y', 8, FLOAT64),
                  FieldSpec('z', 16, FLOAT64)]
        step = 24
    cloud = pack_cloud({'x': xyz[:, 0], 'y': xyz[:, 1], 'z': xyz[:, 2]}, fields, step,
                       is_bigendian=layout == 'big-endian')
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # a RuntimeWarning would fail the test
        with pytest.raises(CloudFormatError, match=r"field 'y' of point 2 is -1e\+300, a "
                           'finite FLOAT64 outside the float32 range'):
            read_cloud(cloud)
        # Only finite values beyond float32 are refused: Inf/NaN points are skipped as usual.
        xyz[2, 1] = 3e38
        fine = pack_cloud({'x': xyz[:, 0], 'y': xyz[:, 1], 'z': xyz[:, 2]}, fields, step,
                          is_bigendian=layout == 'big-endian')
        points = read_cloud(fine)
    np.testing.assert_array_equal(points.index, [0, 2])
    np.testing.assert_array_equal(points.xyz, xyz[[0, 2]].astype(np.float32))
    captured = capfd.readouterr()
    assert captured.err == '' and captured.out == ''


def test_unknown_label_value_is_the_documented_one():
    assert UNKNOWN == -2
    doc = saliency_cloud.__doc__
    assert 'UNKNOWN' in doc and '-2' in doc and 'NO_OBJECT' in doc and 'min_confidence' in doc


def test_unknown_extra_field_is_named():
    with pytest.raises(CloudFormatError, match="'reflectivity' is not in the cloud"):
        read_cloud(_good(), ['reflectivity'])


def test_not_a_cloud_at_all():
    with pytest.raises(CloudFormatError, match='not a PointCloud2'):
        read_cloud(object())


# --- property-based ---------------------------------------------------------------------

_TYPES = sorted(DATATYPE_TO_NUMPY)


@st.composite
def layouts(draw):
    """Draw random valid layouts: x, y, z (f32/f64) and extras, any order, gaps, padding."""
    xyz_type = draw(st.sampled_from([FLOAT32, FLOAT64]))
    specs = [('x', xyz_type, 1), ('y', xyz_type, 1), ('z', xyz_type, 1)]
    for i in range(draw(st.integers(0, 3))):
        specs.append((f'f{i}', draw(st.sampled_from(_TYPES)), draw(st.integers(1, 3))))
    order = draw(st.permutations(specs))
    fields, offset = [], 0
    for name, dtype, count in order:
        offset += draw(st.integers(0, 5))  # gaps make unaligned offsets
        fields.append(FieldSpec(name, offset, dtype, count))
        offset += DATATYPE_TO_NUMPY[dtype].itemsize * count
    point_step = offset + draw(st.integers(0, 6))
    height = draw(st.integers(1, 4))
    width = draw(st.integers(1, 12))
    row_pad = draw(st.integers(0, 9))
    big = draw(st.booleans())
    return fields, point_step, height, width, row_pad, big


def _columns(fields, num, rng):
    cols = {}
    for spec in fields:
        dtype = DATATYPE_TO_NUMPY[spec.datatype]
        shape = (num,) if spec.count == 1 else (num, spec.count)
        if dtype.kind == 'f':
            values = (rng.normal(size=shape) * 100).astype(dtype)
            values[rng.random(shape) < 0.1] = rng.choice([np.nan, np.inf, -np.inf])
        else:
            info = np.iinfo(dtype)
            values = rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
        cols[spec.name] = values
    return cols


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layouts(), st.integers(0, 2**32 - 1))
def test_round_trip_of_random_layouts_is_exact(layout, seed):
    fields, point_step, height, width, row_pad, big = layout
    rng = np.random.default_rng(seed)
    num = height * width
    cols = _columns(fields, num, rng)
    cloud = pack_cloud(cols, fields, point_step, height=height,
                       row_step=width * point_step + row_pad, is_bigendian=big)
    extras = [f.name for f in fields if f.name not in 'xyz']
    points = read_cloud(cloud, extras)
    xyz = np.stack([cols['x'], cols['y'], cols['z']], axis=1)
    valid = np.isfinite(xyz).all(axis=1)
    np.testing.assert_array_equal(points.index, np.flatnonzero(valid))
    np.testing.assert_array_equal(points.xyz, xyz[valid].astype(np.float32))
    for name in extras:
        assert points.extras[name].dtype.isnative
        np.testing.assert_array_equal(points.extras[name], cols[name][valid])


@st.composite
def corruptions(draw):
    """Draw a good layout and one random corruption of its header or data."""
    layout = draw(layouts())
    fields, point_step, height, width, row_pad, big = layout
    kind = draw(st.sampled_from(['truncate', 'step', 'datatype', 'offset', 'drop_xyz',
                                 'zero', 'row_step', 'count']))
    return layout, kind, draw(st.integers(1, 1000))


@settings(max_examples=150, deadline=None)
@given(corruptions())
def test_random_corruptions_raise_cloud_format_error(case):
    (fields, point_step, height, width, row_pad, big), kind, amount = case
    rng = np.random.default_rng(amount)
    cloud = pack_cloud(_columns(fields, height * width, rng), fields, point_step,
                       height=height, row_step=width * point_step + row_pad, is_bigendian=big)
    last_end = max(f.offset + DATATYPE_TO_NUMPY[f.datatype].itemsize * f.count for f in fields)
    if kind == 'truncate':
        bad = dataclasses.replace(cloud, data=cloud.data[:max(0, len(cloud.data) - amount)])
    elif kind == 'step':
        bad = dataclasses.replace(cloud, point_step=last_end - 1 - amount % last_end)
    elif kind == 'datatype':
        i = amount % len(fields)
        bad = dataclasses.replace(cloud, fields=[
            f._replace(datatype=9 + amount) if j == i else f for j, f in enumerate(fields)])
    elif kind == 'offset':
        i = amount % len(fields)
        bad = dataclasses.replace(cloud, fields=[
            f._replace(offset=point_step + amount % 7) if j == i else f
            for j, f in enumerate(fields)])
    elif kind == 'drop_xyz':
        gone = 'xyz'[amount % 3]
        bad = dataclasses.replace(cloud, fields=[f for f in fields if f.name != gone])
    elif kind == 'zero':
        bad = dataclasses.replace(cloud, width=0) if amount % 2 else \
            dataclasses.replace(cloud, height=0)
    elif kind == 'row_step':
        bad = dataclasses.replace(cloud, row_step=width * point_step - 1 - amount % 5)
    else:
        i = amount % len(fields)
        bad = dataclasses.replace(cloud, fields=[
            f._replace(count=0) if j == i else f for j, f in enumerate(fields)])
    with pytest.raises(CloudFormatError):
        read_cloud(bad)


def test_saliency_fields_are_the_documented_ones():
    assert [(f.name, f.offset, f.datatype) for f in SALIENCY_FIELDS] == [
        ('x', 0, FLOAT32), ('y', 4, FLOAT32), ('z', 8, FLOAT32), ('intensity', 12, FLOAT32),
        ('label', 16, INT32), ('object_id', 20, INT32)]


def test_sensor_msgs_py_and_pointcloud2_build_identical_dtypes():
    """On ROS machines: the two backends agree on every driver layout (skipped here)."""
    point_cloud2 = pytest.importorskip('sensor_msgs_py.point_cloud2')
    import pointcloud2
    from pointcam_ros.formats.sensor_layouts import LAYOUTS
    for layout in LAYOUTS.values():
        assert pointcloud2.dtype_from_fields(layout.fields, layout.point_step) == \
            point_cloud2.dtype_from_fields(layout.fields, point_step=layout.point_step)


def test_padded_rows_of_an_odd_point_step_read_back():
    """Found by the random layouts: 13-byte points, rows padded by one byte (a strided view)."""
    fields = [FieldSpec('x', 0, FLOAT32), FieldSpec('y', 4, FLOAT32), FieldSpec('z', 8, FLOAT32),
              FieldSpec('f0', 12, INT8)]
    xyz = np.array([[1.5, -2.0, 3.25], [4.0, 5.5, -6.0]], np.float32)
    cols = {'x': xyz[:, 0], 'y': xyz[:, 1], 'z': xyz[:, 2], 'f0': np.array([7, -8], np.int8)}
    cloud = pack_cloud(cols, fields, 13, height=2, row_step=14)
    points = read_cloud(cloud, ['f0'])
    np.testing.assert_array_equal(points.xyz, xyz)
    np.testing.assert_array_equal(points.extras['f0'], [7, -8])
