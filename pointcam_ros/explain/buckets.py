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
Fixed batch buckets for a pure batched function, replayed as CUDA graphs on a GPU.

A scan has a different number of objects every time; a CUDA graph replays
one fixed shape. :class:`BucketRunner` pads the object count B up to the
next bucket (default 1, 8, 32, 64, 128; more objects run in chunks of the
largest bucket), runs the function, and slices the results back to B. Padding
objects are all-zero points (or, when a mask is given, rows marked all real),
and since every object is computed independently in ``eval()`` mode they
change nothing for the real ones.

On CUDA each (bucket, N, dtype, mask or not) shape is captured once into a
``torch.cuda.CUDAGraph`` (after a few warm-up runs on a side stream; all
graphs share one memory pool; capture errors are thread-local, so other
threads may use the GPU meanwhile) and replayed under a lock; the outputs
are cloned out of the graph's static buffers, so a result stays valid
after the next call.
On the CPU the same padding and slicing run and only the capture is
skipped, which is how CI tests this path. The graphs read the model's
parameters in place: weights loaded with ``load_state_dict`` are seen, and
when the parameters move (``.to()``, ``.half()``) the graphs are dropped and
captured again; after replacing a parameter object, call
:meth:`BucketRunner.reset`.
"""

import threading
from typing import Callable, Optional, Sequence, Union

import torch
from torch import nn, Tensor

#: Object-count buckets captured by default on CUDA.
DEFAULT_BUCKETS = (1, 8, 32, 64, 128)

#: ``func(points (B, C, N), mask (B, N) bool or None, requested (B,) int64) -> outputs``,
#: each a tensor with the object axis first, or None.
BatchFunction = Callable[[Tensor, Optional[Tensor], Tensor], tuple[Tensor, ...]]


class BucketRunner:
    """
    Run a pure batched function at fixed object counts; CUDA graphs on CUDA devices.

    ``buckets``: ascending object counts to pad to; ``'auto'`` means
    :data:`DEFAULT_BUCKETS` on CUDA (where graphs pay) and no padding on the
    CPU; ``None`` or ``()`` never pads. ``cuda_graphs``: capture and replay
    on CUDA devices (never on the CPU). ``module``: whose parameters and
    buffers the graphs read (to notice when they move).
    """

    def __init__(self, func: BatchFunction, module: nn.Module,
                 buckets: Union[str, None, Sequence[int]] = 'auto',
                 cuda_graphs: bool = True, warmup: int = 3):
        if isinstance(buckets, str):
            if buckets != 'auto':
                raise ValueError(f"buckets must be 'auto', None or ascending ints, "
                                 f'got {buckets!r}')
        elif buckets:
            buckets = tuple(int(b) for b in buckets)
            if any(b < 1 for b in buckets) or list(buckets) != sorted(set(buckets)):
                raise ValueError(f'buckets must be ascending positive ints, got {buckets}')
        self.func = func
        self.module = module
        self.buckets = buckets
        self.cuda_graphs = cuda_graphs
        self.warmup = warmup
        self._graphs: dict = {}
        self._tensors: tuple = ()
        self._fingerprint: tuple = ()
        self._pool = None
        self._lock = threading.Lock()

    def buckets_for(self, device: torch.device) -> tuple[int, ...]:
        """Return the buckets used on ``device`` (empty: no padding)."""
        if self.buckets == 'auto':
            return DEFAULT_BUCKETS if device.type == 'cuda' and self.cuda_graphs else ()
        return tuple(self.buckets or ())

    def __call__(self, points: Tensor, mask: Optional[Tensor], requested: Tensor
                 ) -> tuple[Tensor, ...]:
        """Return ``func(points, mask, requested)``, computed at bucket sizes."""
        buckets = self.buckets_for(points.device)
        if not buckets:
            with torch.no_grad():
                return self.func(points, mask, requested)
        largest = buckets[-1]
        parts = []
        for start in range(0, points.shape[0], largest):
            stop = min(start + largest, points.shape[0])
            size = stop - start
            bucket = next(b for b in buckets if b >= size)
            parts.append(self._run_bucket(
                bucket, points[start:stop], None if mask is None else mask[start:stop],
                requested[start:stop]))
        if len(parts) == 1:
            return parts[0]
        return tuple(None if column[0] is None else torch.cat(column) for column in zip(*parts))

    def _run_bucket(self, bucket: int, points: Tensor, mask: Optional[Tensor],
                    requested: Tensor) -> tuple[Tensor, ...]:
        """Pad one chunk of at most ``bucket`` objects, run it, slice the outputs."""
        size = points.shape[0]
        if points.device.type == 'cuda' and self.cuda_graphs:
            # Static buffers must be normal tensors even when the caller is in
            # inference mode, so that later calls outside it can write them.
            with self._lock, torch.inference_mode(False), torch.no_grad():
                graph, static_in, static_out = self._graph(bucket, points, mask)
                static_points, static_mask, static_requested = static_in
                static_points[:size].copy_(points)
                static_points[size:].zero_()
                static_requested[:size].copy_(requested)
                static_requested[size:].fill_(-1)
                if mask is not None:
                    static_mask[:size].copy_(mask)
                    static_mask[size:].fill_(True)
                graph.replay()
                return tuple(None if out is None else out[:size].clone() for out in static_out)
        padded_points = points.new_zeros((bucket, *points.shape[1:]))
        padded_points[:size] = points
        padded_requested = requested.new_full((bucket,), -1)
        padded_requested[:size] = requested
        padded_mask = None
        if mask is not None:
            padded_mask = mask.new_ones((bucket, mask.shape[1]))
            padded_mask[:size] = mask
        with torch.no_grad():
            outputs = self.func(padded_points, padded_mask, padded_requested)
        return tuple(None if out is None else out[:size] for out in outputs)

    def reset(self) -> None:
        """Drop every captured graph (e.g. after replacing a parameter object of the model)."""
        self._graphs.clear()
        self._tensors = ()
        self._fingerprint = ()

    def _current_fingerprint(self) -> tuple:
        """Addresses of the parameters and buffers the graphs were captured with (cheap)."""
        return tuple(t.data_ptr() for t in self._tensors)

    def _graph(self, bucket: int, points: Tensor, mask: Optional[Tensor]):
        """Return (graph, static inputs, static outputs) for this shape, capturing it once."""
        if not self._tensors or self._current_fingerprint() != self._fingerprint:
            # First capture, or the model moved (.to(), .half() give parameters new storage).
            self._graphs.clear()
            self._tensors = (*self.module.parameters(), *self.module.buffers())
            self._fingerprint = self._current_fingerprint()
        key = (bucket, tuple(points.shape[1:]), points.dtype, points.device, mask is not None)
        entry = self._graphs.get(key)
        if entry is None:
            entry = self._capture(bucket, points, mask)
            self._graphs[key] = entry
        return entry

    def _capture(self, bucket: int, points: Tensor, mask: Optional[Tensor]):
        """Warm up on a side stream, then capture ``func`` at ``bucket`` objects."""
        device = points.device
        static_points = points.new_zeros((bucket, *points.shape[1:]))
        static_mask = None if mask is None else mask.new_ones((bucket, mask.shape[1]))
        static_requested = torch.full((bucket,), -1, dtype=torch.long, device=device)
        inputs = (static_points, static_mask, static_requested)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        with torch.cuda.device(device):
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side), torch.no_grad():
                for _ in range(self.warmup):
                    self.func(*inputs)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.no_grad(), torch.cuda.graph(graph, pool=self._pool,
                                                   capture_error_mode='thread_local'):
                outputs = self.func(*inputs)
        return graph, inputs, outputs
