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
The live node's bookkeeping of its scans, ROS-free: counters, the recent window, reasons.

:class:`ScanStats` keeps, per input topic, cumulative counters (received,
processed, dropped, rejected, errors, skipped), the outcomes of the last
``window`` seconds in one-second buckets, reject and error reasons by kind,
latencies and per-stage times; :meth:`ScanStats.status` turns them into a level
(:data:`OK`, :data:`WARN`, :data:`ERROR`), a message and the key/values that
``pointcam_node`` publishes on ``/diagnostics``. Its memory is bounded whatever
the input stream: at most ``window`` buckets, :data:`MAX_REASON_KINDS` reason
keys and fixed-length timing histories per topic. Not thread-safe: the node
calls it under its lock.
"""

from collections import Counter, deque
from dataclasses import dataclass, field
import json
import math
from typing import Optional, Sequence

import numpy as np

#: Diagnostic levels, as ``diagnostic_msgs/DiagnosticStatus`` numbers them.
OK, WARN, ERROR = 0, 1, 2
#: ``reject_reasons`` keeps at most this many kinds per topic; further ones count as 'other'.
MAX_REASON_KINDS = 32
#: ``last_reject_reason`` is cut to this many characters.
MAX_REASON_TEXT = 300
#: Stages of one answered scan whose medians ``stage_p50_ms`` reports: transport in
#: (header stamp to the subscription callback, when the stamp is of this clock), waiting
#: in the mailbox, decoding, the pipeline, building and publishing the saliency cloud,
#: then building and publishing the label markers.
STAGES = ('transport_in', 'mailbox', 'decode', 'pipeline', 'build', 'publish', 'labels')
#: Outcomes of a scan.
OUTCOMES = ('processed', 'rejected', 'error', 'dropped', 'skipped')


def reason_kind(exc: BaseException) -> str:
    """
    Return the counting key of a rejected or failed scan: exception class and ``kind``.

    ``CloudFormatError: duplicate_field``, ``ScanError: too_many_points``, or the
    class name alone for other exceptions. Never the message, which may hold any
    text a publisher sends (field names), so the set of keys stays small.
    """
    kind = getattr(exc, 'kind', '')
    return f'{type(exc).__name__}: {kind}' if isinstance(kind, str) and kind \
        else type(exc).__name__


def rate_hz(times: deque, now: float, span: float = 5.0) -> float:
    """Events per second over the last ``span`` seconds of monotonic ``times``."""
    recent = [t for t in times if now - t <= span]
    if len(recent) < 2:
        return 0.0
    return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)


@dataclass
class TopicStats:
    """Counters, recent outcomes and timings of one input topic."""

    received: int = 0
    processed: int = 0
    dropped: int = 0
    rejected: int = 0
    errors: int = 0
    skipped: int = 0
    last_reason: str = ''
    reasons: Counter = field(default_factory=Counter)  # reason_kind -> count, bounded
    last_input: Optional[float] = None  # monotonic time of the newest scan
    objects_capped: int = 0  # clusters left unexplained by the per-scan object cap
    scans_capped: int = 0
    buckets: deque = field(default_factory=deque)  # (whole second, Counter of outcomes)
    input_times: deque = field(default_factory=lambda: deque(maxlen=200))
    output_times: deque = field(default_factory=lambda: deque(maxlen=200))
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=1000))
    stage_ms: dict = field(default_factory=lambda: {s: deque(maxlen=1000) for s in STAGES})

    def note(self, outcome: str, now: float, window: float) -> None:
        """Record ``outcome`` (one of :data:`OUTCOMES`) at monotonic ``now``."""
        second = math.floor(now)
        if not self.buckets or self.buckets[-1][0] != second:
            self.buckets.append((second, Counter()))
        self.buckets[-1][1][outcome] += 1
        self._prune(now, window)

    def _prune(self, now: float, window: float) -> None:
        while self.buckets and now - (self.buckets[0][0] + 1) >= window:
            self.buckets.popleft()

    def add_reason(self, kind: str, text: str) -> None:
        """Count a reject/error of ``kind``; keep its text (cut) as the last reason."""
        if kind not in self.reasons and len(self.reasons) >= MAX_REASON_KINDS:
            kind = 'other'
        self.reasons[kind] += 1
        self.last_reason = text[:MAX_REASON_TEXT]

    def window_counts(self, now: float, window: float) -> Counter:
        """Outcomes of the last ``window`` seconds (to the second)."""
        self._prune(now, window)
        total: Counter = Counter()
        for _, counts in self.buckets:
            total.update(counts)
        return total


class ScanStats:
    """Every input topic's :class:`TopicStats`, and the node-wide error state."""

    def __init__(self, topics: Sequence[str], window: float, started: float):
        """``window``: seconds the level follows; ``started``: monotonic start time."""
        self.window = window
        self.started = started
        self.topics = {topic: TopicStats() for topic in topics}
        self.worker_errors = 0
        self.config_error = ''  # why the requested parameters could not be applied

    def received(self, topic: str, now: float, replaced: bool) -> None:
        """Count an arrived scan; ``replaced``: it replaced an unprocessed one (dropped)."""
        stats = self.topics[topic]
        stats.received += 1
        stats.input_times.append(now)
        stats.last_input = now
        if replaced:
            stats.dropped += 1
            stats.note('dropped', now, self.window)

    def count(self, topic: str, outcome: str, now: float,
              error: Optional[BaseException] = None, latency_ms: Optional[float] = None,
              capped: int = 0, stages: Optional[dict[str, float]] = None) -> None:
        """Record a scan's outcome: processed, rejected, error or skipped."""
        if outcome not in OUTCOMES:
            raise ValueError(f'unknown outcome {outcome!r}; one of {OUTCOMES}')
        stats = self.topics[topic]
        stats.note(outcome, now, self.window)
        if outcome == 'processed':
            stats.processed += 1
            stats.output_times.append(now)
            stats.latencies_ms.append(latency_ms)
            stats.objects_capped += capped
            stats.scans_capped += capped > 0
            for stage, ms in (stages or {}).items():
                stats.stage_ms[stage].append(ms)
        elif outcome == 'skipped':
            stats.skipped += 1
        else:
            if outcome == 'rejected':
                stats.rejected += 1
            else:
                stats.errors += 1
                self.worker_errors += 1
            if error is not None:
                text = str(error)
                if outcome == 'error':
                    text = f'{type(error).__name__}: {text}'
                stats.add_reason(reason_kind(error), text)

    def idle_seconds(self, topic: str, now: float) -> Optional[float]:
        """Seconds without a scan on ``topic`` once that reaches the window, else None."""
        stats = self.topics[topic]
        idle = now - (stats.last_input if stats.last_input is not None else self.started)
        return idle if idle >= self.window else None

    def level(self, window: Counter, idle: Optional[float]) -> tuple[int, str]:
        """
        Level and message from the outcomes of the recent window.

        ERROR for parameters not applied or failed scans; WARN for rejected or
        dropped scans, or (nothing explained) ``idle`` seconds without any scan;
        OK otherwise.
        """
        span = f'in the last {self.window:g} s'
        if self.config_error:
            return ERROR, f'parameters not applied: {self.config_error}'
        if window['error']:
            return ERROR, f'{window["error"]} scans failed {span}'
        if window['rejected'] or window['dropped']:
            return WARN, f'{window["dropped"]} dropped, {window["rejected"]} rejected {span}'
        if window['processed']:
            return OK, f'{window["processed"]} scans explained {span}'
        if idle is not None:
            return WARN, f'no scan received for {idle:.0f} s'
        if window['skipped']:
            return OK, (f'{window["skipped"]} scans not explained {span}: no subscriber to '
                        'the outputs')
        return OK, f'no scan to explain {span}'

    def status(self, topic: str, now: float) -> tuple[int, str, dict[str, str]]:
        """Level, message and the /diagnostics key/values (strings) of one topic."""
        s = self.topics[topic]
        window = s.window_counts(now, self.window)
        level, message = self.level(window, self.idle_seconds(topic, now))
        latencies = list(s.latencies_ms)
        p50, p99 = np.percentile(latencies, [50, 99]) if latencies else (0.0, 0.0)
        values = {
            'input_rate_hz': f'{rate_hz(s.input_times, now):.2f}',
            'output_rate_hz': f'{rate_hz(s.output_times, now):.2f}',
            'stage_p50_ms': json.dumps({stage: round(float(np.median(times)), 2)
                                        for stage, times in s.stage_ms.items() if times}),
            'received': s.received, 'processed': s.processed, 'dropped': s.dropped,
            'rejected': s.rejected, 'errors': s.errors, 'skipped_no_subscribers': s.skipped,
            'window_s': f'{self.window:g}', 'window_processed': window['processed'],
            'window_dropped': window['dropped'], 'window_rejected': window['rejected'],
            'window_errors': window['error'], 'last_reject_reason': s.last_reason,
            'reject_reasons': json.dumps(dict(s.reasons.most_common())),
            'seconds_since_last_scan': ('never' if s.last_input is None
                                        else f'{now - s.last_input:.1f}'),
            'scans_capped': s.scans_capped, 'objects_capped': s.objects_capped,
            'latency_p50_ms': f'{p50:.1f}', 'latency_p99_ms': f'{p99:.1f}',
            'worker_errors': self.worker_errors, 'config_error': self.config_error}
        return level, message, {key: str(value) for key, value in values.items()}
