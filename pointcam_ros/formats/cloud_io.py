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

"""
Conversion between ``sensor_msgs/PointCloud2`` and numpy, ROS-free.

Works on any object with the PointCloud2 attributes (``height``, ``width``,
``fields``, ``is_bigendian``, ``point_step``, ``row_step``, ``data``): an
rclpy message, a ``rosbags`` message or :class:`PackedCloud`. Handles what
real LiDAR drivers publish: padded and unaligned layouts (Velodyne XYZIRT,
22 bytes), padded rows, organized clouds, big-endian data, float64 xyz and
NaN/Inf points, which are skipped while the index map back to the original
row-major point order is kept. A cloud with ``width * height == 0`` and
no data is valid and reads as 0 points.

Every malformed message raises :class:`CloudFormatError`: among others
overlapping fields, fields past ``point_step``, and finite float64
coordinates beyond the float32 range that pointcam_ros computes in.
"""

from dataclasses import dataclass, field
import sys
from typing import Any, Mapping, NamedTuple, Optional, Sequence

import numpy as np
from pointcam_ros.common.geometry import finite_rows
from pointcam_ros.common.results import NO_OBJECT, UNKNOWN  # noqa: F401 - re-exported

from pointcam_ros.formats._pc2_backend import dtype_from_fields

# sensor_msgs/PointField datatype constants.
INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64 = range(1, 9)

DATATYPE_TO_NUMPY: Mapping[int, np.dtype] = {
    INT8: np.dtype(np.int8),
    UINT8: np.dtype(np.uint8),
    INT16: np.dtype(np.int16),
    UINT16: np.dtype(np.uint16),
    INT32: np.dtype(np.int32),
    UINT32: np.dtype(np.uint32),
    FLOAT32: np.dtype(np.float32),
    FLOAT64: np.dtype(np.float64),
}
NUMPY_TO_DATATYPE: Mapping[np.dtype, int] = {v: k for k, v in DATATYPE_TO_NUMPY.items()}

#: Largest finite float32; float64 coordinates beyond it are refused, not clipped.
FLOAT32_MAX = float(np.finfo(np.float32).max)


class CloudFormatError(ValueError):
    """
    A PointCloud2 message that cannot be decoded; the message says why.

    ``kind`` is one of :data:`CLOUD_ERROR_KINDS`, a fixed set that diagnostics
    count by (the message itself may hold any field name a publisher sends).
    """

    def __init__(self, message: str, kind: str = 'bad_layout'):
        if kind not in CLOUD_ERROR_KINDS:
            raise ValueError(f'unknown CloudFormatError kind {kind!r}')
        super().__init__(message)
        self.kind = kind


#: Every ``CloudFormatError.kind``.
CLOUD_ERROR_KINDS = ('not_pointcloud2', 'bad_layout', 'bad_field', 'duplicate_field',
                     'overlapping_fields', 'size_mismatch', 'missing_field', 'value_range',
                     'too_many_points')


class FieldSpec(NamedTuple):
    """One ``sensor_msgs/PointField``: name, byte offset, datatype, count."""

    name: str
    offset: int
    datatype: int
    count: int = 1


@dataclass
class PackedCloud:
    """
    A PointCloud2 body without header: the layout plus the raw bytes.

    Has the same attribute names as the message, so every reader here accepts
    it; ``ros_msgs`` and ``bag_io`` turn it into rclpy / rosbags messages.
    """

    height: int
    width: int
    fields: list[FieldSpec]
    is_bigendian: bool
    point_step: int
    row_step: int
    data: bytes  # or a bytes-like buffer, e.g. array.array('B') (saliency_cloud's buffer)
    is_dense: bool


@dataclass
class CloudPoints:
    """
    The valid points of a cloud.

    Attributes
    ----------
    xyz:
        ``(M, 3) float32`` coordinates of the points whose x, y and z are all
        finite, in the cloud's row-major order.
    index:
        ``(M,) int64`` position of each of those points in the original cloud
        (row-major, ``row * width + column``).
    num_points:
        ``height * width`` of the original cloud.
    extras:
        Requested extra fields, each ``(M,)`` (or ``(M, count)``) in native
        byte order and the field's own dtype.

    """

    xyz: np.ndarray
    index: np.ndarray
    num_points: int
    extras: dict[str, np.ndarray] = field(default_factory=dict)


def _describe(cloud: Any) -> str:
    return (f'{cloud.height}x{cloud.width} cloud, point_step {cloud.point_step}, '
            f'row_step {cloud.row_step}, {len(cloud.data)} data bytes')


def _as_specs(cloud: Any) -> list[FieldSpec]:
    try:
        return [FieldSpec(str(f.name), int(f.offset), int(f.datatype), int(f.count))
                for f in cloud.fields]
    except (AttributeError, TypeError, ValueError) as exc:
        raise CloudFormatError(f'cloud.fields is not a list of PointField: {exc}',
                               kind='not_pointcloud2') from exc


def validate_layout(cloud: Any) -> list[FieldSpec]:
    """
    Check that a PointCloud2's layout is self-consistent.

    Returns the fields as :class:`FieldSpec`. Raises :class:`CloudFormatError`
    naming the first problem found: negative sizes, unknown datatype, a field
    with count 0, a field past ``point_step``, two fields sharing bytes,
    duplicate names, ``row_step`` smaller than ``width * point_step``, data
    shorter than ``row_step * height``, or data in a cloud of 0 points. A
    cloud with ``width * height == 0`` and empty data is valid (0 points).
    """
    try:
        height, width = int(cloud.height), int(cloud.width)
        point_step, row_step = int(cloud.point_step), int(cloud.row_step)
        data_len = len(cloud.data)
    except (AttributeError, TypeError, ValueError) as exc:
        raise CloudFormatError(f'not a PointCloud2 message: {exc}',
                               kind='not_pointcloud2') from exc
    specs = _as_specs(cloud)
    if height < 0 or width < 0 or row_step < 0:
        raise CloudFormatError(f'negative size in {_describe(cloud)}', kind='size_mismatch')
    if point_step <= 0:
        raise CloudFormatError(f'point_step must be positive, got {point_step}',
                               kind='size_mismatch')
    seen: set[str] = set()
    for spec in specs:
        if spec.datatype not in DATATYPE_TO_NUMPY:
            raise CloudFormatError(
                f"field '{spec.name}' has unknown datatype {spec.datatype} "
                f'(sensor_msgs/PointField defines 1..8)', kind='bad_field')
        if spec.count <= 0:
            raise CloudFormatError(f"field '{spec.name}' has count {spec.count}; must be >= 1",
                                   kind='bad_field')
        size = DATATYPE_TO_NUMPY[spec.datatype].itemsize * spec.count
        if spec.offset < 0 or spec.offset + size > point_step:
            raise CloudFormatError(
                f"field '{spec.name}' (offset {spec.offset}, {size} bytes) lies past "
                f'point_step {point_step}: point_step is smaller than the fields',
                kind='bad_field')
        if spec.name in seen:
            raise CloudFormatError(f"field '{spec.name}' appears twice", kind='duplicate_field')
        seen.add(spec.name)
    _check_no_overlap(specs)
    if height * width == 0:
        if data_len:
            raise CloudFormatError(
                f'cloud has width*height = {width}*{height} = 0 points but {data_len} data '
                'bytes: width/height and data disagree (an empty cloud has empty data)',
                kind='size_mismatch')
        return specs
    if row_step < width * point_step:
        raise CloudFormatError(
            f'row_step {row_step} is smaller than width*point_step = {width * point_step}',
            kind='size_mismatch')
    if data_len < row_step * height:
        raise CloudFormatError(
            f'data is {data_len} bytes, shorter than row_step*height = {row_step * height}',
            kind='size_mismatch')
    return specs


def _check_no_overlap(specs: Sequence[FieldSpec]) -> None:
    """Raise :class:`CloudFormatError` if two fields share a byte."""
    spans = sorted((spec.offset, spec.offset + DATATYPE_TO_NUMPY[spec.datatype].itemsize
                    * spec.count, spec.name) for spec in specs)
    for (start_a, end_a, name_a), (start_b, end_b, name_b) in zip(spans, spans[1:]):
        if start_b < end_a:
            raise CloudFormatError(
                f"fields '{name_a}' (bytes {start_a}..{end_a - 1}) and '{name_b}' (bytes "
                f'{start_b}..{end_b - 1}) overlap: the offsets or datatypes in cloud.fields '
                'are wrong', kind='overlapping_fields')


def _structured_view(cloud: Any, dtype: np.dtype) -> np.ndarray:
    """Return a zero-copy ``(height * width,)`` view of the points (rows de-padded)."""
    height, width = int(cloud.height), int(cloud.width)
    row_step, point_step = int(cloud.row_step), int(cloud.point_step)
    buf = np.frombuffer(cloud.data, dtype=np.uint8)
    if cloud.is_bigendian != (sys.byteorder == 'big'):
        dtype = dtype.newbyteorder('S')
    if row_step == width * point_step or height == 1:
        return np.ndarray((height * width,), dtype=dtype, buffer=buf, strides=(point_step,))
    rows = np.ndarray((height, width), dtype=dtype, buffer=buf, strides=(row_step, point_step))
    return rows.reshape(-1)  # copies only when rows are padded


def _check_float32_range(values: np.ndarray, names: str) -> None:
    """
    Raise :class:`CloudFormatError` if a finite float64 exceeds the float32 range.

    ``values`` is ``(N,)`` (one field, ``names`` its name) or ``(N, 3)``
    (``names`` = ``'xyz'``, one per column).
    """
    with np.errstate(invalid='ignore'):
        too_big = np.abs(values) > FLOAT32_MAX  # NaN compares False; Inf is removed below
    if not too_big.any():
        return
    too_big &= np.isfinite(values)
    if not too_big.any():
        return
    row, column = divmod(int(np.flatnonzero(too_big)[0]), len(names))
    value = float(values.reshape(len(values), -1)[row, column])
    raise CloudFormatError(
        f"field '{names[column]}' of point {row} is {value:g}, a finite FLOAT64 outside the "
        f'float32 range (|v| <= {FLOAT32_MAX:.4g}) that pointcam_ros computes in: the '
        'publisher writes garbage or wrong units; fix it, or mark such points NaN',
        kind='value_range')


def _xyz_from_view(points: np.ndarray, specs: Mapping[str, FieldSpec]) -> np.ndarray:
    """
    Gather x, y, z into a new ``(N, 3) float32`` array.

    Raises :class:`CloudFormatError` for finite FLOAT64 coordinates beyond
    the float32 range (they would silently become Inf and be dropped).
    """
    x, y, z = specs['x'], specs['y'], specs['z']
    base = points.dtype.fields['x'][0]
    contiguous = (x.datatype == y.datatype == z.datatype and x.count == y.count == z.count == 1
                  and y.offset == x.offset + base.itemsize
                  and z.offset == y.offset + base.itemsize)
    if contiguous:
        # One strided copy of a (3,) sub-array: the fast path for every driver. A view
        # that skips row padding cannot be a buffer: pack its records first.
        source = points if points.flags.c_contiguous else np.ascontiguousarray(points)
        trio = np.dtype({'names': ['xyz'], 'formats': [(base, 3)], 'offsets': [x.offset],
                         'itemsize': source.dtype.itemsize})
        view = np.ndarray(source.shape, dtype=trio, buffer=source,
                          strides=source.strides)['xyz']
        if x.datatype == FLOAT64:
            _check_float32_range(view, 'xyz')
        return view.astype(np.float32)
    xyz = np.empty((points.shape[0], 3), dtype=np.float32)
    for column, name in enumerate('xyz'):
        if specs[name].datatype == FLOAT64:
            _check_float32_range(points[name], name)
        xyz[:, column] = points[name]
    return xyz


def read_cloud(cloud: Any, extra_fields: Sequence[str] = (),
               max_points: Optional[int] = None) -> CloudPoints:
    """
    Read the valid points (and optional extra fields) of a PointCloud2.

    Parameters
    ----------
    cloud:
        A PointCloud2 message (rclpy, rosbags) or :class:`PackedCloud`.
    extra_fields:
        Names of further fields to return (e.g. ``intensity``, ``ring``,
        ``time``). A name the cloud lacks raises :class:`CloudFormatError`;
        fields with ``count > 1`` come back as ``(M, count)``.
    max_points:
        Refuse a cloud of more points (``width * height``, NaN ones
        included) before decoding it (kind ``too_many_points``); None: no
        limit.

    Returns
    -------
    CloudPoints
        ``xyz`` ``(M, 3) float32`` of the points with finite x, y, z and their
        ``index`` ``(M,) int64`` into the original row-major order. An empty
        cloud (``width * height == 0``, no data) gives ``M == 0``.

    Raises
    ------
    CloudFormatError
        For a malformed layout (see :func:`validate_layout`) or finite
        FLOAT64 coordinates beyond the float32 range.

    """
    specs = validate_layout(cloud)
    declared = int(cloud.width) * int(cloud.height)
    if max_points is not None and declared > max_points:
        raise CloudFormatError(
            f'cloud has {declared} points (width {int(cloud.width)} x height '
            f'{int(cloud.height)}), more than max_input_points = {max_points}: raise '
            'max_input_points if the sensor really sends that many', kind='too_many_points')
    by_name = {spec.name: spec for spec in specs}
    missing = [name for name in 'xyz' if name not in by_name]
    if missing:
        raise CloudFormatError(
            f"cloud has no field {', '.join(missing)}: it has "
            f"{', '.join(by_name) or 'no fields'}", kind='missing_field')
    for name in 'xyz':
        spec = by_name[name]
        if spec.datatype not in (FLOAT32, FLOAT64) or spec.count != 1:
            raise CloudFormatError(
                f"field '{name}' must be one FLOAT32 or FLOAT64, got datatype "
                f'{spec.datatype} count {spec.count}', kind='bad_field')
    for name in extra_fields:
        if name not in by_name:
            raise CloudFormatError(
                f"requested field '{name}' is not in the cloud ({', '.join(by_name)})",
                kind='missing_field')

    wanted = [by_name[n] for n in ('x', 'y', 'z', *extra_fields)]
    if int(cloud.height) * int(cloud.width) == 0:
        return CloudPoints(
            xyz=np.empty((0, 3), np.float32), index=np.empty(0, np.int64), num_points=0,
            extras={n: np.empty((0,) if by_name[n].count == 1 else (0, by_name[n].count),
                                DATATYPE_TO_NUMPY[by_name[n].datatype])
                    for n in extra_fields})
    dtype = dtype_from_fields(wanted, point_step=int(cloud.point_step))
    points = _structured_view(cloud, dtype)
    num_points = points.shape[0]
    xyz = _xyz_from_view(points, by_name)
    finite = finite_rows(xyz)
    if finite.all():
        index = np.arange(num_points, dtype=np.int64)
        keep: Optional[np.ndarray] = None
    else:
        index = np.flatnonzero(finite)
        keep = index
        xyz = np.take(xyz, keep, axis=0)
    extras = {}
    for name in extra_fields:
        spec = by_name[name]
        if spec.count == 1:
            values = points[name]
        else:
            values = np.stack([points[f'{name}_{i}'] for i in range(spec.count)], axis=1)
        values = values if keep is None else values[keep]
        extras[name] = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder('='))
    return CloudPoints(xyz=xyz, index=index, num_points=num_points, extras=extras)


def pack_cloud(columns: Mapping[str, np.ndarray], fields: Sequence[FieldSpec],
               point_step: int, *, height: int = 1, row_step: Optional[int] = None,
               is_bigendian: bool = False, fill_value: float = 0) -> PackedCloud:
    """
    Pack per-point arrays into any PointCloud2 layout.

    Parameters
    ----------
    columns:
        ``name -> (height * width,)`` (or ``(height * width, count)``) arrays,
        one per field; a field without a column is filled with ``fill_value``.
    fields, point_step:
        The layout (e.g. one of :mod:`pointcam_ros.formats.sensor_layouts`).
    height:
        Rows of an organized cloud; the points are row-major.
    row_step:
        Bytes per row, at least ``width * point_step`` (padding is zeroed).
    is_bigendian:
        Write multi-byte values big-endian.
    fill_value:
        Value of the fields that have no column.

    """
    specs = [FieldSpec(*f) for f in fields]
    num = None
    for name, col in columns.items():
        if num is None:
            num = len(col)
        elif len(col) != num:
            raise ValueError(f"column '{name}' has {len(col)} points, expected {num}")
    if num is None or num == 0 or num % height:
        raise ValueError(f'need a positive number of points divisible by height {height}')
    width = num // height
    row_step = width * point_step if row_step is None else int(row_step)
    if row_step < width * point_step:
        raise ValueError(f'row_step {row_step} < width*point_step {width * point_step}')
    dtype = dtype_from_fields(specs, point_step=point_step)
    if is_bigendian != (sys.byteorder == 'big'):
        dtype = dtype.newbyteorder('S')
    buf = np.zeros(row_step * height, dtype=np.uint8)
    rows = np.ndarray((height, width), dtype=dtype, buffer=buf, strides=(row_step, point_step))
    for spec in specs:
        col = columns.get(spec.name)
        for i in range(spec.count):
            sub = spec.name if spec.count == 1 else f'{spec.name}_{i}'
            if col is None:
                rows[sub] = fill_value
            else:
                rows[sub] = np.reshape(col if spec.count == 1 else col[:, i], (height, width))
    return PackedCloud(height=height, width=width, fields=specs, is_bigendian=is_bigendian,
                       point_step=point_step, row_step=row_step, data=buf.tobytes(),
                       is_dense=False)


#: Layout of the published saliency cloud (24 bytes, little-endian).
SALIENCY_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec('x', 0, FLOAT32), FieldSpec('y', 4, FLOAT32), FieldSpec('z', 8, FLOAT32),
    FieldSpec('intensity', 12, FLOAT32),  # Grad-CAM saliency in [0, 1]
    FieldSpec('label', 16, INT32),  # class id; NO_OBJECT (-1) outside objects; UNKNOWN (-2)
    FieldSpec('object_id', 20, INT32),  # object id within the scan, NO_OBJECT outside
)
SALIENCY_POINT_STEP = 24
_SALIENCY_DTYPE = np.dtype({'names': ['xyz', 'intensity', 'label', 'object_id'],
                            'formats': [('<f4', 3), '<f4', '<i4', '<i4'],
                            'offsets': [0, 12, 16, 20], 'itemsize': SALIENCY_POINT_STEP})


def saliency_cloud(xyz: np.ndarray, saliency: np.ndarray, labels: np.ndarray,
                   object_ids: np.ndarray, buffer: Optional[Any] = None) -> PackedCloud:
    """
    Build the output saliency cloud, one point per valid input point.

    Parameters
    ----------
    xyz:
        ``(M, 3) float32`` points (the ``xyz`` of :func:`read_cloud`); ``M``
        may be 0 (then the cloud has width 0 and no data).
    saliency:
        ``(M,) float32`` in ``[0, 1]`` (written to ``intensity``).
    labels:
        ``(M,) int`` written to the INT32 field ``label``: the object's class
        id (an index into the model's class names), ``NO_OBJECT`` (-1) for
        points outside every object, ``UNKNOWN`` (-2, see
        :mod:`pointcam_ros.common.results`) for the points of an object whose
        confidence is below ``min_confidence`` (its saliency is still for its
        predicted class).
    object_ids:
        ``(M,) int`` object id within the scan (INT32 ``object_id``),
        ``NO_OBJECT`` (-1) outside objects.

    buffer:
        Optional writable buffer of ``M * SALIENCY_POINT_STEP`` bytes (e.g. the
        ``array.array('B')`` a ROS message will own): the points are written
        into it and it becomes ``data``, saving the copy into ``bytes``.

    Returns an unorganized (``height == 1``) little-endian cloud with
    :data:`SALIENCY_FIELDS`; give it the input's header when publishing.

    """
    num = xyz.shape[0]
    for name, arr in (('saliency', saliency), ('labels', labels), ('object_ids', object_ids)):
        if arr.shape != (num,):
            raise ValueError(f'{name} has shape {arr.shape}, expected ({num},)')
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f'xyz must be (M, 3), got {xyz.shape}')
    out = (np.empty(num, dtype=_SALIENCY_DTYPE) if buffer is None
           else np.frombuffer(buffer, dtype=_SALIENCY_DTYPE))
    if out.shape != (num,):
        raise ValueError(f'buffer holds {out.nbytes} bytes, expected {num} points of '
                         f'{SALIENCY_POINT_STEP}')
    out['xyz'] = xyz
    out['intensity'] = saliency
    out['label'] = labels
    out['object_id'] = object_ids
    return PackedCloud(height=1, width=num, fields=list(SALIENCY_FIELDS), is_bigendian=False,
                       point_step=SALIENCY_POINT_STEP, row_step=SALIENCY_POINT_STEP * num,
                       data=out.tobytes() if buffer is None else buffer, is_dense=True)
