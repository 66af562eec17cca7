"""Temporal smoothing: the One Euro filter (Casiez et al., CHI 2012) on many channels at once, and the filling
of frames without a face.

The filter is a low-pass whose cutoff rises with the signal's speed: ``cutoff = min_cutoff + beta · |ẋ|`` (Hz),
so still poses lose their jitter while fast moves keep up. It runs forward only (causal), as a live capture would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SmoothConfig:
    """One Euro parameters (chosen on data: docs in README, "Face from video")."""

    min_cutoff: float = 1.0  # Hz: the cutoff of a still signal (lower: smoother, slower)
    beta: float = 0.2  # how fast the cutoff rises with speed (per unit of the signal per second)
    derivative_cutoff: float = 1.0  # Hz: the cutoff of the speed estimate

    def check(self) -> None:
        if self.min_cutoff <= 0 or self.beta < 0 or self.derivative_cutoff <= 0:
            raise ValueError(f"smoothing needs min_cutoff > 0, beta >= 0, derivative_cutoff > 0; got {self}")


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray:
    tau = 1.0 / (2.0 * np.pi * np.asarray(cutoff, np.float64))
    return 1.0 / (1.0 + tau / dt)


def one_euro(values: np.ndarray, times: np.ndarray, config: SmoothConfig = SmoothConfig()) -> np.ndarray:
    """``values`` (T, C) at ``times`` (T,) seconds, filtered along T; each channel on its own."""
    config.check()
    x = np.asarray(values, np.float64)
    out = np.empty_like(x)
    if not len(x):
        return out
    out[0] = x[0]
    speed = np.zeros(x.shape[1:])
    for t in range(1, len(x)):
        dt = max(float(times[t] - times[t - 1]), 1e-6)
        raw_speed = (x[t] - out[t - 1]) / dt
        speed = speed + _alpha(config.derivative_cutoff, dt) * (raw_speed - speed)
        a = _alpha(config.min_cutoff + config.beta * np.abs(speed), dt)
        out[t] = out[t - 1] + a * (x[t] - out[t - 1])
    return out


def fill_gaps(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``values`` (T, C) with the rows where ``valid`` is False interpolated linearly between the valid ones (held
    at the ends); unchanged when no row is valid."""
    values = np.asarray(values, np.float64).copy()
    valid = np.asarray(valid, bool)
    if valid.all() or not valid.any():
        return values
    known = np.flatnonzero(valid)
    for c in range(values.shape[1]):
        values[~valid, c] = np.interp(np.flatnonzero(~valid), known, values[known, c])
    return values
