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

The package: :mod:`~pointcam_ros.tools.fleet.plan` checks the run and lays it
out before any work, :mod:`~pointcam_ros.tools.fleet.schedule` runs it on a
:class:`~pointcam_ros.tools.fleet.backend.Backend`
(:mod:`~pointcam_ros.tools.fleet.local`,
:mod:`~pointcam_ros.tools.fleet.ray_backend`) and draws its progress
(:mod:`~pointcam_ros.tools.fleet.progress`). The names below are its API.
"""

from pointcam_ros.tools.fleet.backend import Backend, Event, explain_job, Worker, worker_id
from pointcam_ros.tools.fleet.local import LocalBackend
from pointcam_ros.tools.fleet.plan import (
    BagJob, BagResult, check_layout, find_bags, FleetError, FleetOptions, FleetSummary,
    is_folder_of_bags, LayoutError, output_name, plan, SUMMARY_NAME, SUMMARY_TOOL)
from pointcam_ros.tools.fleet.ray_backend import import_ray, RAY_INSTALL, RayBackend
from pointcam_ros.tools.fleet.schedule import ATTEMPTS, explain_bags

__all__ = [
    'ATTEMPTS', 'Backend', 'BagJob', 'BagResult', 'check_layout', 'Event', 'explain_bags',
    'explain_job', 'find_bags', 'FleetError', 'FleetOptions', 'FleetSummary', 'import_ray',
    'is_folder_of_bags', 'LayoutError', 'LocalBackend', 'output_name', 'plan', 'RAY_INSTALL',
    'RayBackend', 'SUMMARY_NAME', 'SUMMARY_TOOL', 'Worker', 'worker_id']
