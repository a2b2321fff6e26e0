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
Run a fleet: plan, hand the bags to a :class:`Backend`'s workers, keep ``summary.json``.

:func:`explain_bags` plans the run (:func:`~pointcam_ros.tools.fleet.plan.plan`),
records unreadable inputs as failed, starts the backend's workers and gives
each idle one the next bag. A bag whose worker dies is retried once on a
fresh worker, then recorded as failed; the dead worker's temporary output
folder is removed. ``summary.json`` is rewritten after every bag.
"""

from collections import deque
from dataclasses import replace
import json
import logging
from pathlib import Path
import time
from typing import Callable, Optional, Sequence

from pointcam_ros.common.atomic import write_text_atomic
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.formats.bag_io import remove_partials_of
from pointcam_ros.tools.bag_tool import BagError, check_inputs
from pointcam_ros.tools.fleet.backend import Backend, Event, Worker
from pointcam_ros.tools.fleet.local import LocalBackend
from pointcam_ros.tools.fleet.plan import (
    BagJob, BagResult, FleetError, FleetOptions, FleetSummary, plan, SUMMARY_NAME)
from pointcam_ros.tools.fleet.progress import ProgressDisplay
from tqdm.contrib.logging import logging_redirect_tqdm

LOG = logging.getLogger('pointcam_bag')

ATTEMPTS = 2
"""Tries per bag when its worker process dies (a first run and one retry)."""


def explain_bags(inputs: Sequence[Path], out_dir: Path, config: PipelineConfig,
                 options: FleetOptions = FleetOptions(),
                 backend: Optional[Backend] = None) -> FleetSummary:
    """
    Explain every bag of ``inputs`` into ``out_dir``; write and return the summary.

    ``backend`` is any :class:`Backend`: a :class:`LocalBackend` (default: one
    worker) or a :class:`~pointcam_ros.tools.fleet.ray_backend.RayBackend`.
    See :func:`plan` for what is refused before any
    work starts. On an interrupt the workers are stopped, their partial
    outputs removed, the summary written (unfinished bags ``interrupted``)
    and the interrupt re-raised.
    """
    backend = backend or LocalBackend()
    out_dir = Path(out_dir)
    jobs, rows = plan(inputs, out_dir, options)
    started = time.perf_counter()
    summary = FleetSummary(rows, backend=backend.name, workers=0)
    jobs = _fail_unreadable(jobs, rows)
    write = _summary_writer(out_dir, summary, started)
    if not jobs:
        write()
        return summary
    try:
        summary.workers = backend.workers_for(len(jobs))
        config = backend.prepare(config, summary.workers)
    except BaseException:
        backend.stop([], force=True)  # e.g. shut down the Ray cluster it started
        raise
    write()
    with logging_redirect_tqdm():
        display = ProgressDisplay(len(rows), options.progress)
        display.overall.update(len(rows) - len(jobs))
        unfinished = 'not run'  # the run stopped on an error before reaching these bags
        try:
            _schedule(backend, jobs, summary, config, options, display, write)
        except KeyboardInterrupt:
            unfinished = 'interrupted'
            raise
        finally:
            display.close()
            for row in rows:
                if row.status == 'pending':
                    row.status = unfinished
            write()
    return summary


def _fail_unreadable(jobs: list[BagJob], rows: list[BagResult]) -> list[BagJob]:
    """Record missing inputs and inputs that are not bags as failed; return the rest."""
    kept = []
    for job in jobs:
        try:
            check_inputs([Path(job.source)])
        except BagError as exc:
            rows[job.index].status, rows[job.index].error = 'failed', str(exc)
            LOG.warning('%s', exc)
            continue
        kept.append(job)
    return kept


def _summary_writer(out_dir: Path, summary: FleetSummary, started: float) -> Callable[[], None]:
    def write() -> None:
        summary.seconds = time.perf_counter() - started
        write_text_atomic(out_dir / SUMMARY_NAME, json.dumps(summary.to_dict(), indent=1))
    return write


def _schedule(backend: Backend, jobs: list[BagJob], summary: FleetSummary,
              config: PipelineConfig, options: FleetOptions, display: ProgressDisplay,
              write: Callable[[], None]) -> None:
    """Hand the jobs to idle workers; retry a bag once when its worker dies."""
    rows = summary.bags
    pending = deque(jobs)
    workers = [Worker(slot) for slot in range(summary.workers)]
    backend.begin(config, options)
    alive: list[Worker] = []
    idle_deaths = [summary.workers]  # deaths of workers without a bag still tolerated
    try:
        alive.extend(workers)
        backend.start(workers)
        while pending or any(w.job for w in alive):
            for worker in alive:
                if worker.job is None and pending:
                    worker.job = pending.popleft()
                    backend.submit(worker, worker.job)
            for event in backend.poll(alive, timeout=0.2):
                _handle(event, backend, alive, pending, rows, display, idle_deaths)
                if event[0] in ('result', 'died'):
                    write()
        backend.stop(alive, force=False)
    except BaseException:
        backend.stop(alive, force=True)
        for worker in alive:
            if worker.job is not None:
                remove_partials_of(Path(worker.job.output), worker.pid, worker.host)
        raise


def _handle(event: Event, backend: Backend, alive: list[Worker], pending: deque,
            rows: list[BagResult], display: ProgressDisplay, idle_deaths: list[int]) -> None:
    if event[0] == 'progress':
        _, index, done, total = event
        if rows[index].status != 'pending':
            return  # a late report of a finished bag (Ray's queue is a separate channel)
        slot = next((w.slot for w in alive if w.job and w.job.index == index), 0)
        display.progress(index, Path(rows[index].source).name, slot, done, total)
        return
    if event[0] == 'fatal':
        raise FleetError(event[2])
    worker = next((w for w in alive if w.pid == event[1]), None)
    if worker is None:
        return  # from a worker already replaced (its death was seen first)
    job, worker.job = worker.job, None
    if event[0] == 'result':
        result: BagResult = event[2]
        rows[job.index] = result
        if result.status == 'failed':
            LOG.warning('%s failed: %s', result.source, result.error)
        else:
            LOG.info('%s: %d scans (%d rejected) in %.1f s', result.source, result.scans,
                     result.rejected, result.seconds)
        display.finished(job.index, result, sum(r.status == 'failed' for r in rows))
        return
    # event[0] == 'died': the worker and the bag it was working on, if any.
    reason = event[2]
    alive.remove(worker)
    if job is not None:
        remove_partials_of(Path(job.output), worker.pid, worker.host)
        if job.attempt < ATTEMPTS:
            LOG.warning('%s: %s; retrying it on a new worker', job.source, reason)
            # plan() let this job run only if its output was absent or replaceable, so the
            # retry may replace what the dead attempt may have completed just before dying
            # (check_output still refuses anything that is not a complete pointcam output).
            pending.appendleft(replace(job, attempt=job.attempt + 1, overwrite=True))
        else:
            row = rows[job.index]
            row.status, row.attempts = 'failed', job.attempt
            row.worker = f'{worker.host}:{worker.pid}'
            row.error = f'{reason} on each of {ATTEMPTS} attempts; no output was written'
            LOG.warning('%s failed: %s', job.source, row.error)
            display.finished(job.index, row, sum(r.status == 'failed' for r in rows))
    else:
        idle_deaths[0] -= 1
        if idle_deaths[0] < 0:
            raise FleetError(f'worker processes keep dying before they take a bag ({reason}): '
                             'check memory and the model on the workers')
    if pending:
        fresh = Worker(worker.slot)
        alive.append(fresh)
        backend.start([fresh])
