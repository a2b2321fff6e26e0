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
Explain a fleet's drives: many bags, one output bag each, on local processes or Ray.

:func:`explain_bags` turns every input bag (or every bag of an input folder)
into ``OUT_DIR/<name of the input>`` with :func:`~pointcam_ros.tools.bag_tool.explain_bag`
and keeps ``OUT_DIR/summary.json`` up to date: per bag its scans, rejected
scans, seconds, status (``done``, ``failed``, ``skipped``, ``interrupted``),
error, attempts and the worker that ran it.

The bags are independent, so they are shared among workers, each holding one
:class:`ScenePipeline` (the model is loaded once per worker, not once per
bag): :class:`LocalBackend` runs ``--jobs N`` worker processes on this
machine, :class:`RayBackend` one Ray actor per worker (one task per bag) on a
local or remote cluster. Faults stay local to a bag: a bag that cannot be
read is recorded as failed and the others go on; a bag whose worker process
dies is retried once on a fresh worker, then recorded as failed, and the
dead worker's temporary output folder is removed. Outputs appear only when
complete (:class:`~pointcam_ros.formats.bag_io.SafeBagWriter`), inputs are
only read, and with ``resume`` bags whose complete output exists and was
explained from the same input (:func:`~pointcam_ros.formats.bag_io.source_fingerprint`)
are skipped; the others are redone, and their row says why (``note``).
Duplicate inputs, clashing output names and clashing topics stop the run
before any work (:class:`LayoutError`).
"""

from collections import deque
from dataclasses import asdict, dataclass, replace
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
from pathlib import Path
import signal
import time
from typing import Any, Callable, Optional, Sequence

from pointcam_ros.common.atomic import write_text_atomic
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.formats.bag_io import (
    BagExistsError, bags_in, check_output, describe_sources, is_pointcam_output,
    recorded_sources, remove_partials_of, replace_refusal, source_fingerprint)
from pointcam_ros.perception.pipeline import ScenePipeline
from pointcam_ros.tools.bag_tool import (
    BagError, check_inputs, explain_bag, Interrupted, output_topics, UsageError)
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

LOG = logging.getLogger('pointcam_bag')

SUMMARY_NAME = 'summary.json'
SUMMARY_TOOL = 'pointcam_bag'
"""``tool`` field of every summary this module writes; only such a file is replaced."""
ATTEMPTS = 2
"""Tries per bag when its worker process dies (a first run and one retry)."""
RAY_INSTALL = "pip install 'ray[default]' (or pip install 'pointcam_ros[fleet]')"
PROGRESS_PERIOD_S = 0.25


class FleetError(RuntimeError):
    """The run as a whole cannot go on (bad layout, no Ray, a worker that cannot start)."""


class LayoutError(FleetError, UsageError):
    """
    The inputs cannot be laid out in the output folder; found before any work.

    A bag given twice, two bags with one output name, or an output name the
    run needs for itself (``summary.json``, hidden temporary names).
    """


@dataclass(frozen=True)
class FleetOptions:
    """What to do with each bag; the same for every bag of a run."""

    topics: tuple[str, ...] = ()  # PointCloud2 topics; () = the only sensor topic of each bag
    copy_inputs: bool = False  # copy the input scans into the outputs too
    overwrite: bool = False  # replace earlier pointcam outputs (never anything else)
    resume: bool = False  # skip bags whose output explains the same, unchanged input
    progress: bool = True  # progress bars (overall and per bag)


@dataclass(frozen=True)
class BagJob:
    """One bag to explain: ``index`` in the run, paths as strings (they travel to workers)."""

    index: int
    source: str
    output: str
    overwrite: bool = False
    attempt: int = 1
    note: str = ''  # why an existing output is redone (resume, another source)


@dataclass
class BagResult:
    """What happened to one bag; a row of ``summary.json``."""

    source: str
    output: str
    status: str = 'pending'  # done, failed, skipped, interrupted, not run; pending meanwhile
    scans: int = 0
    rejected: int = 0
    seconds: float = 0.0  # wall clock of the last attempt
    cpu_seconds: float = 0.0  # CPU time (user + system) of the worker process meanwhile
    error: str = ''
    attempts: int = 0
    worker: str = ''  # host:pid of the process that ran the last attempt
    device: str = ''
    note: str = ''  # e.g. why resume redid a bag whose output existed


@dataclass
class FleetSummary:
    """Every bag of a run, in input order, and the run's totals."""

    bags: list[BagResult]
    backend: str = 'local'
    workers: int = 1
    seconds: float = 0.0

    def count(self, status: str) -> int:
        """Return the number of bags with this status."""
        return sum(b.status == status for b in self.bags)

    @property
    def scans(self) -> int:
        """Return the number of scans explained over all bags."""
        return sum(b.scans for b in self.bags)

    def to_dict(self) -> dict:
        """Return the content of ``summary.json``."""
        return {'tool': SUMMARY_TOOL, 'backend': self.backend, 'workers': self.workers,
                'seconds': round(self.seconds, 3), 'scans': self.scans,
                'cpu_seconds': round(sum(b.cpu_seconds for b in self.bags), 3),
                'rejected': sum(b.rejected for b in self.bags),
                'scans_per_second': round(self.scans / self.seconds, 3) if self.seconds else 0,
                'bags_done': self.count('done'), 'bags_failed': self.count('failed'),
                'bags_skipped': self.count('skipped'),
                'bags_redone': sum(bool(b.note) for b in self.bags),
                'bags': [asdict(b) for b in self.bags]}

    def describe(self) -> str:
        """Printable summary, one line per failed bag."""
        lines = [f'{len(self.bags)} bags: {self.count("done")} done, '
                 f'{self.count("skipped")} skipped, {self.count("failed")} failed'
                 + (f', {self.count("interrupted")} interrupted'
                    if self.count('interrupted') else '')
                 + f'; {self.scans} scans in {self.seconds:.1f} s = '
                 f'{self.scans / self.seconds if self.seconds else 0:.2f} scans/s on '
                 f'{self.workers} {self.backend} worker(s)']
        lines += [f'  failed: {b.source}: {b.error}' for b in self.bags if b.status == 'failed']
        lines += [f'  {b.note}' for b in self.bags if b.note]
        return '\n'.join(lines)


def output_name(source: Path) -> str:
    """
    Name of the output bag of ``source``: a rosbag2 folder's name, a file's stem.

    Taken from the absolute path (``.`` and ``..`` resolved, links not), so
    ``pointcam_bag . -o out`` inside a bag is named after that bag.
    """
    source = Path(os.path.abspath(source))
    return source.stem if source.suffix == '.bag' else source.name


def find_bags(inputs: Sequence[Path]) -> list[Path]:
    """
    Expand folders of bags (:func:`~pointcam_ros.formats.bag_io.bags_in`) into their bags.

    Other inputs stay as given, so a missing path or a file that is not a bag
    is reported for that input in the summary.
    """
    found: list[Path] = []
    for path in map(Path, inputs):
        found.extend(bags_in(path) or [path])
    return found


def is_folder_of_bags(path: Path) -> bool:
    """Tell whether ``path`` is a folder, not a bag itself, that holds bags."""
    return bool(bags_in(Path(path)))


def check_layout(bags: Sequence[Path], out_dir: Path) -> None:
    """
    Raise :class:`LayoutError` unless every bag has its own output name in ``out_dir``.

    Refused: one bag reached twice (the same resolved path, e.g. ``a a/drive``
    or a link to a bag given next to it), two bags with one output name, and
    output names the run writes itself (``summary.json``) or uses for
    temporary files (hidden names, starting with ``.``).
    """
    seen: dict[Path, Path] = {}
    names: dict[str, Path] = {}
    for bag in map(Path, bags):
        resolved = bag.resolve()
        if resolved in seen:
            raise LayoutError(f'{resolved} is given twice (as {seen[resolved]} and as {bag}): '
                              'give each bag once; nothing was processed or written')
        seen[resolved] = bag
        name = output_name(bag)
        if not name or name == SUMMARY_NAME or name.startswith('.'):
            what = ('the file the run writes its summary to' if name == SUMMARY_NAME
                    else 'reserved for temporary files' if name else 'empty')
            raise LayoutError(f'the output of {bag} would be named {name!r} in {out_dir}, '
                              f'which is {what}: rename or copy the bag; nothing was '
                              'processed or written')
        other = names.setdefault(name, bag)
        if other != bag:
            raise LayoutError(f'{other} and {bag} would both be written to '
                              f'{out_dir / name}: rename one, or explain them in separate '
                              'calls; nothing was processed or written')


def _redo_note(bag: Path, output: Path, recorded: Optional[list]) -> str:
    """Why ``resume`` redoes ``bag`` although ``output`` exists."""
    now = source_fingerprint([bag])
    if recorded and [s.get('path') for s in recorded if isinstance(s, dict)] == \
            [s['path'] for s in now]:
        why = 'its input changed (file sizes or times) since it was explained'
    else:
        why = (f'it was explained from {describe_sources(recorded)}, not from '
               f'{describe_sources(now)}')
    return f'redone: {output}: {why}'


def plan(inputs: Sequence[Path], out_dir: Path,
         options: FleetOptions) -> tuple[list[BagJob], list[BagResult]]:
    """
    Check the whole run before any work; return the jobs and a result row per bag.

    Creates ``out_dir`` (its parent must exist). Raises :class:`LayoutError`
    for duplicate inputs and clashing output names (:func:`check_layout`),
    :class:`~pointcam_ros.tools.bag_tool.UsageError` for clashing topics
    (:func:`~pointcam_ros.tools.bag_tool.output_topics`), FleetError when
    ``summary.json`` is not ours, ValueError when an output is, contains or
    lies in an input, and BagExistsError when an output exists and neither
    ``resume`` (for an explanation of the same input) nor ``overwrite`` (for
    an explanation holding only its own files) allows it. Bags skipped by
    ``resume`` get a ``skipped`` row and no job; an explanation of another
    input (or of this one before it changed) is redone, with a ``note``.
    """
    out_dir = Path(out_dir)
    bags = find_bags(inputs)
    if not bags:
        raise FleetError('no input bags given')
    check_layout(bags, out_dir)
    if options.topics:
        output_topics(options.topics, options.copy_inputs)
    if os.path.lexists(out_dir) and not out_dir.is_dir():
        raise FleetError(f'output {out_dir} exists and is not a folder: with several bags the '
                         'output is a folder of bags')
    summary = out_dir / SUMMARY_NAME
    if os.path.lexists(summary) and not _is_our_summary(summary):
        raise FleetError(f'{summary} exists and was not written by pointcam_bag: choose '
                         'another output folder')
    created = not os.path.lexists(out_dir)
    try:
        out_dir.mkdir(exist_ok=True)
    except FileNotFoundError as exc:
        raise FleetError(f'the folder {out_dir.parent} of output {out_dir} does not exist: '
                         'create it first') from exc
    jobs, rows, existing = [], [], []
    try:
        for index, bag in enumerate(bags):
            output = out_dir / output_name(bag)
            row = BagResult(source=str(bag), output=str(output))
            rows.append(row)
            overwrite, note = options.overwrite, ''
            if options.resume and is_pointcam_output(output):
                recorded = recorded_sources(output)
                if recorded == source_fingerprint([bag]):
                    row.status = 'skipped'
                    continue
                # An explanation of another input: pointcam_bag's own, so it may be redone.
                overwrite, note = True, _redo_note(bag, output, recorded)
                row.note = note
                LOG.info('%s', note)
            try:
                check_output(output, bags, overwrite)
            except BagExistsError as exc:
                existing.append((output, replace_refusal(output) or str(exc)))
            jobs.append(BagJob(index, str(bag), str(output), overwrite, note=note))
        if existing:
            shown = ', '.join(str(o) for o, _ in existing[:3]) + (
                ' ...' if len(existing) > 3 else '')
            hint = ('pass --resume to skip bags whose output is complete, --overwrite to '
                    'replace earlier pointcam outputs, or choose another output folder')
            if options.resume or options.overwrite:
                reasons = '; '.join(why for _, why in existing[:3])
                hint = (f'they are neither skipped nor replaced ({reasons}): move them away '
                        'or choose another output folder')
            raise BagExistsError(f'{len(existing)} output(s) exist ({shown}): {hint}')
    except BaseException:
        if created:
            out_dir.rmdir()  # only the empty folder made just now
        raise
    return jobs, rows


def _is_our_summary(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get('tool') == SUMMARY_TOOL
    except (OSError, ValueError, AttributeError):
        return False


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


def _throttled(send: Callable[[int, int], None]) -> Callable[[int, int], None]:
    last = [0.0]

    def on_scan(done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - last[0] >= PROGRESS_PERIOD_S:
            last[0] = now
            send(done, total)
    return on_scan


@dataclass
class _Worker:
    """A worker slot as the scheduler sees it."""

    slot: int
    host: str = ''
    pid: int = 0
    handle: Any = None  # a multiprocessing.Process or a Ray actor
    job: Optional[BagJob] = None
    ref: Any = None  # the Ray object ref of the running task


# --- local worker processes ------------------------------------------------------------------


def _local_worker_main(config: PipelineConfig, options: FleetOptions,
                       tasks: Any, events: Any) -> None:
    """
    Entry point of a local worker process: build the pipeline once, explain each job.

    ``events`` is this worker's own pipe to the parent (a ``Connection``):
    a worker killed in the middle of a message can only cut its own pipe
    short, never block or garble the other workers' reports.
    """
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_interrupted)
    try:
        try:
            pipeline = ScenePipeline(config)
        except Exception as exc:  # noqa: B902 - reported to the parent, which stops the run
            events.send(('fatal', os.getpid(), f'a worker cannot build the pipeline: {exc}'))
            return
        while True:
            job = tasks.get()
            if job is None:
                return
            report = _throttled(lambda d, t, i=job.index: events.send(('progress', i, d, t)))
            events.send(('result', os.getpid(), explain_job(pipeline, job, options, report)))
    except KeyboardInterrupt:
        return  # SafeBagWriter has removed the partial output while unwinding


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(signal.Signals(signum).name)


class LocalBackend:
    """``jobs`` worker processes on this machine (spawned, one pipeline each)."""

    name = 'local'

    def __init__(self, jobs: int = 1):
        if jobs < 1:
            raise ValueError(f'--jobs must be >= 1, got {jobs}')
        self.jobs = jobs
        # Workers fork from a server process that has imported torch and the pipeline once
        # (it never runs torch, so forking it is safe): a worker starts in a fraction of a
        # second instead of importing everything again, as with 'spawn'.
        self._context = multiprocessing.get_context('forkserver')
        self._context.set_forkserver_preload([__name__])
        self._events: dict[int, Any] = {}  # slot -> the read end of its worker's pipe
        self._tasks: dict[int, Any] = {}
        self._config: Optional[PipelineConfig] = None
        self._options: Optional[FleetOptions] = None

    def workers_for(self, bags: int) -> int:
        """Worker processes to start for ``bags`` bags."""
        return max(1, min(self.jobs, bags))

    def prepare(self, config: PipelineConfig, workers: int) -> PipelineConfig:
        """Share the CPU cores among the workers unless cpu_threads is set."""
        if config.cpu_threads:
            return config
        return config.replace(cpu_threads=max(1, (os.cpu_count() or 1) // workers))

    def begin(self, config: PipelineConfig, options: FleetOptions) -> None:
        """Keep what every worker needs."""
        self._config, self._options = config, options

    def start(self, workers: list[_Worker]) -> None:
        """
        Start a process per worker; each builds its pipeline (a failure is an event).

        Each worker reports through its own pipe. With one queue shared by
        all workers (the previous design), a worker killed while it held the
        queue's write lock left the others blocked for good: the test that
        kills workers every few milliseconds hung a CI run for 600 s once.
        """
        for worker in workers:
            tasks = self._context.Queue()
            reader, writer = self._context.Pipe(duplex=False)
            process = self._context.Process(
                target=_local_worker_main, name=f'pointcam_bag-{worker.slot}', daemon=True,
                args=(self._config, self._options, tasks, writer))
            process.start()
            writer.close()  # the worker holds the only write end: its death is an EOF here
            self._close_events(worker.slot)
            self._tasks[worker.slot], self._events[worker.slot] = tasks, reader
            worker.handle, worker.pid, worker.host = process, process.pid, os.uname().nodename

    def _close_events(self, slot: int) -> None:
        """Close the read end of ``slot``'s pipe, if it has one."""
        reader = self._events.pop(slot, None)
        if reader is not None:
            reader.close()

    def submit(self, worker: _Worker, job: BagJob) -> None:
        """Send ``job`` to ``worker``."""
        self._tasks[worker.slot].put(job)

    def poll(self, workers: list[_Worker], timeout: float) -> list[tuple]:
        """Events: progress, result, fatal, then ``('died', pid, reason)`` for dead workers."""
        events = []
        readers = {self._events[w.slot]: w.slot for w in workers if w.slot in self._events}
        for reader in multiprocessing.connection.wait(list(readers), timeout):
            try:
                events.append(reader.recv())
                while reader.poll():
                    events.append(reader.recv())
            except (EOFError, OSError):  # the worker has gone (mid-message, perhaps)
                self._close_events(readers[reader])
        reported = {e[1] for e in events if e[0] in ('result', 'fatal')}
        for worker in workers:
            code = worker.handle.exitcode
            if code is not None and worker.pid not in reported:
                why = (f'killed by {signal.Signals(-code).name}' if code < 0
                       else f'exited with code {code}')
                events.append(('died', worker.pid, f'its worker process {why}'))
        return events

    def stop(self, workers: list[_Worker], force: bool) -> None:
        """End the workers: politely (no more jobs) or at once (SIGTERM, then SIGKILL)."""
        workers = [w for w in workers if w.handle is not None]
        for worker in workers:
            if worker.handle.exitcode is None:
                if force:
                    worker.handle.terminate()
                else:
                    self._tasks[worker.slot].put(None)
        for worker in workers:
            worker.handle.join(timeout=30)
            if worker.handle.exitcode is None:
                worker.handle.kill()
                worker.handle.join()
            self._close_events(worker.slot)


# --- Ray -------------------------------------------------------------------------------------


def import_ray() -> Any:
    """Import Ray, or raise FleetError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise FleetError(f'--ray needs Ray, which is not installed: {RAY_INSTALL}') from exc
    return ray


class RayBagWorker:
    """A Ray actor's state: one pipeline, loaded once, that explains one bag per task."""

    def __init__(self, config: PipelineConfig, options: FleetOptions):
        self.pipeline = ScenePipeline(config)
        self.options = options

    def whoami(self) -> tuple[str, int]:
        """Host and process id (to clean up after this worker if it dies)."""
        return os.uname().nodename, os.getpid()

    def explain(self, job: BagJob, progress: Any) -> BagResult:
        """Explain one bag; ``progress`` is a Ray queue of (index, done, total)."""
        def send(done: int, total: int) -> None:
            try:
                progress.put_nowait((job.index, done, total))
            except Exception:  # noqa: B902 - progress is best effort (queue full or gone)
                pass
        return explain_job(self.pipeline, job, self.options, _throttled(send))


class RayBackend:
    """
    One Ray actor per worker on a Ray cluster, one task per bag.

    ``address``: ``None`` starts a local cluster (or uses the session this
    process already has), ``'auto'`` or ``'ray://host:10001'`` joins one.
    Input and output paths must be the same on every node (shared storage),
    and pointcam_ros must be importable there. With ``gpus_per_task`` > 0
    each worker gets that share of a GPU and uses device ``cuda``.
    """

    name = 'ray'

    def __init__(self, address: Optional[str] = None, workers: Optional[int] = None,
                 gpus_per_task: float = 0.0, cpus_per_task: float = 1.0):
        if workers is not None and workers < 1:
            raise ValueError(f'--jobs must be >= 1, got {workers}')
        if gpus_per_task < 0 or cpus_per_task <= 0:
            raise ValueError('--gpus-per-task must be >= 0 and --cpus-per-task > 0')
        self.address, self.workers = address, workers
        self.gpus_per_task, self.cpus_per_task = gpus_per_task, cpus_per_task
        self._ray = import_ray()
        self._started = False
        self._actor_class: Any = None
        self._progress: Any = None
        self._args: tuple = ()

    def _init(self) -> None:
        if not self._ray.is_initialized():
            self._ray.init(address=self.address, include_dashboard=False,
                           log_to_driver=False)
            self._started = True

    def workers_for(self, bags: int) -> int:
        """``workers``, or as many as the cluster's CPUs (GPUs) allow, at most one per bag."""
        self._init()
        if self.workers is not None:
            return max(1, min(self.workers, bags))
        resources = self._ray.cluster_resources()
        if self.gpus_per_task:
            fit = int(resources.get('GPU', 0) // self.gpus_per_task)
            if fit < 1:
                raise FleetError(f'the Ray cluster has {resources.get("GPU", 0)} GPUs, fewer '
                                 f'than --gpus-per-task {self.gpus_per_task}')
        else:
            fit = int(resources.get('CPU', 1) // self.cpus_per_task)
        return max(1, min(fit, bags))

    def prepare(self, config: PipelineConfig, workers: int) -> PipelineConfig:
        """Device ``cuda`` with GPUs, else ``cpu``; torch threads = CPUs per task."""
        if self.gpus_per_task:
            if config.device == 'cpu':
                raise FleetError('--gpus-per-task with device cpu: drop one of them')
            device = 'cuda' if config.device == 'auto' else config.device
        else:
            if config.device != 'auto' and config.device != 'cpu':
                raise FleetError(f'device {config.device} on Ray needs --gpus-per-task')
            device = 'cpu'
        threads = config.cpu_threads or max(1, int(self.cpus_per_task))
        return config.replace(device=device, cpu_threads=threads)

    def begin(self, config: PipelineConfig, options: FleetOptions) -> None:
        """Define the actor and the progress queue."""
        from ray.util.queue import Queue
        self._actor_class = self._ray.remote(RayBagWorker).options(
            num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task, max_restarts=0,
            max_task_retries=0)
        self._progress = Queue(maxsize=10_000)
        self._args = (config, options)

    def start(self, workers: list[_Worker]) -> None:
        """Create an actor per worker, all at once; FleetError if one cannot build its pipeline."""
        for worker in workers:
            worker.handle = self._actor_class.remote(*self._args)
        try:
            places = self._ray.get([w.handle.whoami.remote() for w in workers])
        except self._ray.exceptions.RayError as exc:
            raise FleetError(f'a Ray worker cannot build the pipeline: {exc}') from exc
        for worker, (host, pid) in zip(workers, places):
            worker.host, worker.pid = host, pid

    def submit(self, worker: _Worker, job: BagJob) -> None:
        """Run ``job`` on ``worker``'s actor."""
        worker.ref = worker.handle.explain.remote(job, self._progress)

    def poll(self, workers: list[_Worker], timeout: float) -> list[tuple]:
        """Events: progress, then result or ``died`` for finished tasks."""
        events: list[tuple] = []
        by_ref = {w.ref: w for w in workers if w.ref is not None}
        ready = []
        if by_ref:
            ready, _ = self._ray.wait(list(by_ref), num_returns=1, timeout=timeout)
        else:
            time.sleep(timeout)
        pending = self._progress.qsize()
        if pending:
            events += [('progress', *item) for item in self._progress.get_nowait_batch(pending)]
        for ref in ready:
            worker = by_ref[ref]
            worker.ref = None
            try:
                events.append(('result', worker.pid, self._ray.get(ref)))
            except self._ray.exceptions.RayError as exc:  # actor or its process died
                events.append(('died', worker.pid, f'its Ray worker died ({exc})'))
        return events

    def stop(self, workers: list[_Worker], force: bool) -> None:
        """Kill the actors; shut down the cluster if this backend started it."""
        for worker in workers:
            if worker.handle is not None:
                self._ray.kill(worker.handle)
        if self._progress is not None:
            self._progress.shutdown()
        if self._started:
            self._ray.shutdown()
            self._started = False


# --- the scheduler ---------------------------------------------------------------------------


class _Display:
    """An overall bar (bags) and one bar per running bag (scans)."""

    def __init__(self, bags: int, enabled: bool):
        self.enabled = enabled
        self.overall = tqdm(total=bags, unit='bag', desc='bags', position=0, disable=not enabled)
        self.bars: dict[int, tqdm] = {}
        self.scans = 0

    def progress(self, index: int, name: str, slot: int, done: int, total: int) -> None:
        if not self.enabled:
            return
        bar = self.bars.get(index)
        if bar is None:
            bar = self.bars[index] = tqdm(total=total, unit='scan', desc=name,
                                          position=slot + 1, leave=False)
        bar.update(done - bar.n)

    def finished(self, index: int, result: BagResult, failed: int) -> None:
        bar = self.bars.pop(index, None)
        if bar is not None:
            bar.close()
        self.scans += result.scans
        self.overall.set_postfix(scans=self.scans, failed=failed, refresh=False)
        self.overall.update(1)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.overall.close()


def explain_bags(inputs: Sequence[Path], out_dir: Path, config: PipelineConfig,
                 options: FleetOptions = FleetOptions(),
                 backend: Any = None) -> FleetSummary:
    """
    Explain every bag of ``inputs`` into ``out_dir``; write and return the summary.

    ``backend`` is a :class:`LocalBackend` (default: one worker) or a
    :class:`RayBackend`. See :func:`plan` for what is refused before any
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
        display = _Display(len(rows), options.progress)
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


def _schedule(backend: Any, jobs: list[BagJob], summary: FleetSummary,
              config: PipelineConfig, options: FleetOptions, display: _Display,
              write: Callable[[], None]) -> None:
    """Hand the jobs to idle workers; retry a bag once when its worker dies."""
    rows = summary.bags
    pending = deque(jobs)
    workers = [_Worker(slot) for slot in range(summary.workers)]
    backend.begin(config, options)
    alive: list[_Worker] = []
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


def _handle(event: tuple, backend: Any, alive: list[_Worker], pending: deque,
            rows: list[BagResult], display: _Display, idle_deaths: list[int]) -> None:
    kind = event[0]
    if kind == 'progress':
        _, index, done, total = event
        if rows[index].status != 'pending':
            return  # a late report of a finished bag (Ray's queue is a separate channel)
        slot = next((w.slot for w in alive if w.job and w.job.index == index), 0)
        display.progress(index, Path(rows[index].source).name, slot, done, total)
        return
    if kind == 'fatal':
        raise FleetError(event[2])
    worker = next((w for w in alive if w.pid == event[1]), None)
    if worker is None:
        return  # from a worker already replaced (its death was seen first)
    job, worker.job = worker.job, None
    if kind == 'result':
        result: BagResult = event[2]
        rows[job.index] = result
        if result.status == 'failed':
            LOG.warning('%s failed: %s', result.source, result.error)
        else:
            LOG.info('%s: %d scans (%d rejected) in %.1f s', result.source, result.scans,
                     result.rejected, result.seconds)
        display.finished(job.index, result, sum(r.status == 'failed' for r in rows))
        return
    # kind == 'died': the worker and the bag it was working on, if any.
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
        fresh = _Worker(worker.slot)
        alive.append(fresh)
        backend.start([fresh])
