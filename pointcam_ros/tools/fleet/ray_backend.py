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
The Ray backend: one Ray actor per worker on a local or remote cluster, one task per bag.

Ray is optional (``pip install 'pointcam_ros[fleet]'``): it is imported when
a :class:`RayBackend` is made, and its absence is a :class:`FleetError`
that says how to install it.
"""

import os
import time
from typing import Any, Optional

from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.perception.pipeline import ScenePipeline
from pointcam_ros.tools.fleet.backend import Event, explain_job, throttled, Worker
from pointcam_ros.tools.fleet.plan import BagJob, BagResult, FleetError, FleetOptions

RAY_INSTALL = "pip install 'ray[default]' (or pip install 'pointcam_ros[fleet]')"


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
        return explain_job(self.pipeline, job, self.options, throttled(send))


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

    def start(self, workers: list[Worker]) -> None:
        """Create an actor per worker, all at once; FleetError if one cannot build its pipeline."""
        for worker in workers:
            worker.handle = self._actor_class.remote(*self._args)
        try:
            places = self._ray.get([w.handle.whoami.remote() for w in workers])
        except self._ray.exceptions.RayError as exc:
            raise FleetError(f'a Ray worker cannot build the pipeline: {exc}') from exc
        for worker, (host, pid) in zip(workers, places):
            worker.host, worker.pid = host, pid

    def submit(self, worker: Worker, job: BagJob) -> None:
        """Run ``job`` on ``worker``'s actor."""
        worker.ref = worker.handle.explain.remote(job, self._progress)

    def poll(self, workers: list[Worker], timeout: float) -> list[Event]:
        """Events: progress, then result or ``died`` for finished tasks."""
        events: list[Event] = []
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

    def stop(self, workers: list[Worker], force: bool) -> None:
        """Kill the actors; shut down the cluster if this backend started it."""
        for worker in workers:
            if worker.handle is not None:
                self._ray.kill(worker.handle)
        if self._progress is not None:
            self._progress.shutdown()
        if self._started:
            self._ray.shutdown()
            self._started = False
