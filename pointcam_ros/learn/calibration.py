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
Honest confidences: temperature scaling, expected calibration error, a min_confidence.

Temperature scaling (Guo et al., 2017) divides the logits by one number
``T`` fitted on validation data to minimise the negative log-likelihood;
it changes confidences, never the predicted class. The expected
calibration error (ECE) is the mean gap between confidence and accuracy
over 15 equal-width confidence bins, weighted by the bins' shares.
"""

import math
from typing import Optional, Sequence, Union

import numpy as np

ECE_BINS = 15
#: Search interval of the temperature.
T_RANGE = (0.05, 20.0)


#: Lowest point counts of the calibration bands (:func:`fit_band_temperatures`); the first
#: band also takes smaller objects. The simulated validation set's smallest objects (15-29
#: points) were over-confident by 3.5 points under one temperature, its largest (300 or more)
#: under-confident by 1.6.
BAND_MIN_POINTS = (1, 30, 60, 120, 300)
#: Fewest objects a band needs for a temperature of its own; a smaller band joins the one
#: below it.
BAND_MIN_OBJECTS = 200

Temperature = Union[float, np.ndarray]


def _scaled(logits: np.ndarray, temperature: Temperature) -> np.ndarray:
    """``logits`` (M, K) as float64 over one temperature or one per row ((M,))."""
    temperature = np.asarray(temperature, np.float64)
    return np.asarray(logits, np.float64) / (temperature[:, None] if temperature.ndim else
                                             temperature)


def softmax(logits: np.ndarray, temperature: Temperature = 1.0) -> np.ndarray:
    """
    Return class probabilities ``(M, K)`` float64 of ``logits / temperature``, row-wise.

    ``temperature``: one number, or one per row ``(M,)``.
    """
    scaled = _scaled(logits, temperature)
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: Temperature = 1.0) -> float:
    """Return the mean negative log-likelihood of ``labels`` (M,) under ``logits / T``."""
    scaled = _scaled(logits, temperature)
    top = scaled.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(scaled - top).sum(axis=1)) + top[:, 0]
    return float(np.mean(log_z - scaled[np.arange(len(labels)), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """
    Return the temperature that minimises the NLL of ``labels`` (M,) int under ``logits`` (M, K).

    The NLL is convex in ``1 / T``; a golden-section search over ``log T`` in
    :data:`T_RANGE` finds it to 1e-4 relative precision. Raises ValueError
    on an empty or mismatched input.
    """
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels, np.int64)
    if logits.ndim != 2 or len(logits) == 0 or len(logits) != len(labels):
        raise ValueError(f'need (M, K) logits and (M,) labels with M > 0, got '
                         f'{logits.shape} and {labels.shape}')
    low, high = math.log(T_RANGE[0]), math.log(T_RANGE[1])
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = nll(logits, labels, math.exp(a)), nll(logits, labels, math.exp(b))
    while high - low > 1e-4:
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = nll(logits, labels, math.exp(a))
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = nll(logits, labels, math.exp(b))
    return float(math.exp((low + high) / 2))


def _band_index(counts: np.ndarray, min_points: Sequence[int]) -> np.ndarray:
    """Return each object's band ``(M,)`` int64: the last ``min_points`` it reaches, else 0."""
    return np.clip(np.searchsorted(np.asarray(min_points), np.asarray(counts), side='right')
                   - 1, 0, None)


def fit_band_temperatures(logits: np.ndarray, labels: np.ndarray, counts: np.ndarray,
                          min_points: Sequence[int] = BAND_MIN_POINTS,
                          min_objects: int = BAND_MIN_OBJECTS
                          ) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """
    Fit one temperature per band of point counts: ``(band lowest counts, temperatures)``.

    ``logits`` (M, K), ``labels`` (M,), ``counts`` (M,) int the points of each
    object; ``min_points`` ascending, the bands' lowest counts (the first
    band also takes smaller objects). A band with fewer than
    ``min_objects`` objects joins the band below (the first band, the one
    above). ValueError on an empty or mismatched input, bands that are not
    strictly ascending whole numbers from 1, or ``min_objects`` below 1.
    """
    counts = np.asarray(counts, np.int64)
    labels = np.asarray(labels, np.int64)
    if len(counts) != len(labels):
        raise ValueError(f'{len(counts)} point counts for {len(labels)} labels')
    edges = [int(e) for e in min_points]
    if (not edges or edges[0] < 1 or any(b <= a for a, b in zip(edges, edges[1:]))
            or min_objects < 1):
        raise ValueError(f'min_points must be strictly ascending from 1 or more and '
                         f'min_objects >= 1, got {tuple(min_points)} and {min_objects}')
    while len(edges) > 1:
        sizes = np.bincount(_band_index(counts, edges), minlength=len(edges))
        small = np.flatnonzero(sizes < min_objects)
        if not len(small):
            break
        del edges[max(int(small[0]), 1)]  # join the band below (band 0: the one above)
    band = _band_index(counts, edges)
    temperatures = tuple(fit_temperature(logits[band == i], labels[band == i])
                         for i in range(len(edges)))
    return tuple(int(e) for e in edges), temperatures


def band_temperatures(counts: np.ndarray, min_points: Sequence[int],
                      temperatures: Sequence[float]) -> np.ndarray:
    """Return each object's temperature ``(M,)`` float64 for its point count ``counts`` (M,)."""
    return np.asarray(temperatures, np.float64)[_band_index(counts, min_points)]


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    """
    Return per confidence bin: its range, object count, mean confidence and accuracy.

    ``probs`` (M, K) class probabilities, ``labels`` (M,) true classes; bins
    split [0, 1] into ``bins`` equal widths (a confidence of 1 falls in the last).
    """
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    index = np.minimum((confidence * bins).astype(int), bins - 1)
    table = []
    for k in range(bins):
        members = index == k
        count = int(members.sum())
        table.append({'low': k / bins, 'high': (k + 1) / bins, 'count': count,
                      'confidence': float(confidence[members].mean()) if count else float('nan'),
                      'accuracy': float(correct[members].mean()) if count else float('nan')})
    return table


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray,
                               bins: int = ECE_BINS) -> float:
    """Return the ECE: sum over bins of share * |accuracy - confidence| (0 = calibrated)."""
    total = len(labels)
    return float(sum(row['count'] / total * abs(row['accuracy'] - row['confidence'])
                     for row in reliability(probs, labels, bins) if row['count']))


def choose_min_confidence(confidence: np.ndarray, correct: np.ndarray,
                          keep: float = 0.98) -> float:
    """
    Return the largest threshold that keeps ``keep`` of the correct predictions.

    ``confidence`` (M,) calibrated top-class probabilities, ``correct`` (M,)
    bool. Objects below the threshold are shown as "unknown"; the rest of
    the correct ones stay labelled. Rounded down to 0.01.
    """
    good = np.sort(np.asarray(confidence, np.float64)[np.asarray(correct, bool)])
    if not len(good):
        raise ValueError('no correct prediction to keep: is this the right model and data set?')
    threshold = good[int(math.floor((1.0 - keep) * len(good)))]
    return math.floor(threshold * 100) / 100


def calibration_report(logits: np.ndarray, labels: np.ndarray,
                       keeps: Sequence[float] = (0.97, 0.98),
                       counts: Optional[np.ndarray] = None) -> dict:
    """
    Fit the temperature on ``logits`` (M, K) / ``labels`` (M,); return figures before and after.

    Keys: temperature, nll and ece before/after, reliability tables
    before/after, and per share in ``keeps`` the min_confidence threshold
    with the shares of correct and wrong predictions it keeps. With
    ``counts`` (M,), each object's points, also ``temperature_bands``
    (``{'min_points': [...], 'temperatures': [...]}``,
    :func:`fit_band_temperatures`), and the figures after are those of the
    bands.
    """
    temperature = fit_temperature(logits, labels)
    bands = None
    applied: Temperature = temperature
    if counts is not None:
        edges, values = fit_band_temperatures(logits, labels, counts)
        bands = {'min_points': list(edges), 'temperatures': list(values)}
        applied = band_temperatures(counts, edges, values)
    before, after = softmax(logits), softmax(logits, applied)
    confidence = after.max(axis=1)
    correct = after.argmax(axis=1) == labels
    thresholds = {}
    for keep in keeps:
        value = choose_min_confidence(confidence, correct, keep)
        kept = confidence >= value
        thresholds[f'{keep:.2f}'] = {
            'min_confidence': value,
            'correct_kept': float(kept[correct].mean()),
            'wrong_flagged': float((~kept[~correct]).mean()) if (~correct).any() else
            float('nan')}
    return {'temperature': temperature, 'temperature_bands': bands, 'count': int(len(labels)),
            'nll_before': nll(logits, labels), 'nll_after': nll(logits, labels, applied),
            'ece_before': expected_calibration_error(before, labels),
            'ece_after': expected_calibration_error(after, labels),
            'reliability_before': reliability(before, labels),
            'reliability_after': reliability(after, labels),
            'min_confidence': thresholds}


def apply_report(logits: np.ndarray, labels: np.ndarray, temperature: Temperature,
                 min_confidence: float) -> dict:
    """
    Return ECE before/after ``temperature`` and what ``min_confidence`` does on a set.

    ``temperature``: one number, or one per object ``(M,)``.
    """
    after = softmax(logits, temperature)
    confidence = after.max(axis=1)
    correct = after.argmax(axis=1) == labels
    kept = confidence >= min_confidence
    return {'count': int(len(labels)),
            'ece_before': expected_calibration_error(softmax(logits), labels),
            'ece_after': expected_calibration_error(after, labels),
            'correct_kept': float(kept[correct].mean()) if correct.any() else float('nan'),
            'wrong_flagged': float((~kept[~correct]).mean()) if (~correct).any() else
            float('nan'),
            'reliability_after': reliability(after, labels)}
