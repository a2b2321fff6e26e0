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
What the scheduler needs of a backend (:class:`Backend`) and what its workers run.

A backend runs workers, each holding one :class:`ScenePipeline`, and hands
them :class:`~pointcam_ros.tools.fleet.plan.BagJob` s; each worker explains
its bags with :func:`explain_job`. The scheduler
(:mod:`pointcam_ros.tools.fleet.schedule`) sees the workers as
:class:`Worker` slots and learns what happened from the :data:`Event` s that
:meth:`Backend.poll` returns. Implemented by
:class:`~pointcam_ros.tools.fleet.local.LocalBackend` and
:class:`~pointcam_ros.tools.fleet.ray_backend.RayBackend`.
"""

from dataclasses import dataclass
import logging
import os
from pathlib import Path
import time
from typing import Any, Callable, Literal, Optional, Protocol, Union

from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.formats.bag_io import BagExistsError
from pointcam_ros.perception.pipeline import ScenePipeline
from pointcam_ros.tools.bag_tool import BagError, explain_bag
from pointcam_ros.tools.fleet.plan import BagJob, BagResult, FleetOptions

LOG = logging.getLogger('pointcam_bag')

PROGRESS_PERIOD_S = 0.25
"""Shortest interval between two progress reports of a worker (but the last)."""

Event = Union[tuple[Literal['progress'], int, int, int],
              tuple[Literal['result'], int, BagResult],
              tuple[Literal['died', 'fatal'], int, str]]
"""
What :meth:`Backend.poll` reports.

``('progress', bag index, scans done, scans in total)``; ``('result', pid,
BagResult)`` when a worker finished a bag; ``('died', pid, reason)`` when a
worker is gone (with or without a bag); ``('fatal', pid, message)`` when a
worker cannot start, which stops the run.
"""


def explain_job(pipeline: ScenePipeline, job: BagJob, options: FleetOptions,
                on_scan: Optional[Callable[[int, int], None]] = None) -> BagResult:
    """
    Explain one bag in a worker; every error of the bag becomes a ``failed`` result.

    Only an interrupt (KeyboardInterrupt, SIGTERM) propagates; the output
    is then not written.
    """
    result = BagResult(source=job.source, output=job.output, attempts=job.attempt,
                       worker=worker_id(), device=str(pipeline.device), note=job.note)
    started, cpu = time.perf_counter(), _cpu_seconds()
    try:
        summary = explain_bag([Path(job.source)], Path(job.output), pipeline, options.topics,
                              options.copy_inputs, job.overwrite, progress=False,
                              on_scan=on_scan)
    except (BagError, BagExistsError, ValueError, OSError) as exc:
        result.status, result.error = 'failed', str(exc)
    except Exception as exc:  # noqa: B902 - one bad bag must not stop the others
        LOG.exception('%s failed', job.source)
        result.status, result.error = 'failed', f'{type(exc).__name__}: {exc}'
    else:
        result.status, result.scans, result.rejected = 'done', summary.scans, summary.rejected
    result.seconds = time.perf_counter() - started
    result.cpu_seconds = _cpu_seconds() - cpu
    return result


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def worker_id() -> str:
    """``host:pid`` of this process, as written in the temporary folder markers."""
    return f'{os.uname().nodename}:{os.getpid()}'


def throttled(send: Callable[[int, int], None]) -> Callable[[int, int], None]:
    """Wrap ``send(done, total)`` to report at most every PROGRESS_PERIOD_S (and the last)."""
    last = [0.0]

    def on_scan(done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - last[0] >= PROGRESS_PERIOD_S:
            last[0] = now
            send(done, total)
    return on_scan


@dataclass
class Worker:
    """A worker slot as the scheduler sees it."""

    slot: int
    host: str = ''
    pid: int = 0
    handle: Any = None  # a multiprocessing.Process or a Ray actor
    job: Optional[BagJob] = None
    ref: Any = None  # the Ray object ref of the running task


class Backend(Protocol):
    """
    Where the workers run: :class:`~pointcam_ros.tools.fleet.local.LocalBackend` or Ray's.

    The scheduler calls :meth:`workers_for` and :meth:`prepare` once, then
    :meth:`begin`, :meth:`start` for the first workers (and for each
    replacement of a dead one), :meth:`submit` and :meth:`poll` until every
    bag is done, and :meth:`stop` once (also after an error or interrupt).
    """

    name: str
    """``backend`` of ``summary.json``: ``local`` or ``ray``."""

    def workers_for(self, bags: int) -> int:
        """Workers to run for ``bags`` bags (at least 1, at most ``bags``)."""
        ...

    def prepare(self, config: PipelineConfig, workers: int) -> PipelineConfig:
        """Return the configuration each of ``workers`` workers builds its pipeline with."""
        ...

    def begin(self, config: PipelineConfig, options: FleetOptions) -> None:
        """Get ready to start workers with ``config`` that explain bags with ``options``."""
        ...

    def start(self, workers: list[Worker]) -> None:
        """Start a worker per slot; set each one's ``handle``, ``host`` and ``pid``."""
        ...

    def submit(self, worker: Worker, job: BagJob) -> None:
        """Have ``worker`` explain ``job`` (the scheduler has set ``worker.job``)."""
        ...

    def poll(self, workers: list[Worker], timeout: float) -> list[Event]:
        """Wait up to ``timeout`` seconds for :data:`Event` s of ``workers``; return them."""
        ...

    def stop(self, workers: list[Worker], force: bool) -> None:
        """End ``workers``: once they are idle, or at once with ``force``; free the rest."""
        ...
