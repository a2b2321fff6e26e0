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
The local backend: ``--jobs N`` worker processes on this machine.

Each worker process builds one :class:`ScenePipeline` and explains the bags
it is sent one after the other; it reports through its own pipe, so a worker
that dies (or is killed mid-message) is seen as such and never blocks the
others. Processes fork from a fork server that has imported this module
(and so torch and the pipeline) once.
"""

import multiprocessing
import multiprocessing.connection
import os
import signal
from typing import Any, Optional

from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.perception.pipeline import ScenePipeline
from pointcam_ros.tools.bag_tool import Interrupted
from pointcam_ros.tools.fleet.backend import Event, explain_job, throttled, Worker
from pointcam_ros.tools.fleet.plan import BagJob, FleetOptions


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
            report = throttled(lambda d, t, i=job.index: events.send(('progress', i, d, t)))
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

    def start(self, workers: list[Worker]) -> None:
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

    def submit(self, worker: Worker, job: BagJob) -> None:
        """Send ``job`` to ``worker``."""
        self._tasks[worker.slot].put(job)

    def poll(self, workers: list[Worker], timeout: float) -> list[Event]:
        """Events: progress, result, fatal, then ``('died', pid, reason)`` for dead workers."""
        events: list[Event] = []
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

    def stop(self, workers: list[Worker], force: bool) -> None:
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
