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
Plan a fleet run before any work: one job and one summary row per bag.

:func:`plan` expands folders of bags, refuses what cannot work (duplicate
inputs, clashing output names and topics: :class:`LayoutError`; a
``summary.json`` that is not pointcam_bag's; outputs that exist and may not
be replaced) and, with ``resume``, skips bags whose complete output was
explained from the same input (:func:`~pointcam_ros.formats.bag_io.source_fingerprint`)
and redoes the others with a ``note``. The dataclasses here are what travels
between the scheduler and the workers (:class:`BagJob`, :class:`BagResult`)
and what ``summary.json`` holds (:class:`FleetSummary`).
"""

from dataclasses import asdict, dataclass
import json
import logging
import os
from pathlib import Path
from typing import Optional, Sequence

from pointcam_ros.formats.bag_io import (
    BagExistsError, bags_in, check_output, describe_sources, is_pointcam_output,
    recorded_sources, replace_refusal, source_fingerprint)
from pointcam_ros.tools.bag_tool import output_topics, UsageError

LOG = logging.getLogger('pointcam_bag')

SUMMARY_NAME = 'summary.json'
SUMMARY_TOOL = 'pointcam_bag'
"""``tool`` field of every summary this package writes; only such a file is replaced."""


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
