"""A reconstruction running in a worker thread, and the modal driver that polls it from Blender's UI.

The worker thread runs :func:`services.reconstruct.run` (numpy / onnxruntime / dlib, which release
the GIL in their heavy parts); the UI thread only polls a small state object on a timer and, when the
worker is done, builds the scene (``bpy`` is only ever touched from the UI thread). Esc sets the
cancel event: the pipeline stops at its next stage, and a result that arrives after a cancel is
dropped. ``ModalDriver`` holds the operator's logic without ``bpy.types.Operator`` so it can be
driven by tests with synthetic events.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import reconstruct

RUNNING, FINISHED, FAILED, CANCELLED = "RUNNING", "FINISHED", "FAILED", "CANCELLED"


@dataclass
class JobState:
    stage: str = "starting"
    fraction: float = 0.0
    status: str = RUNNING
    result: Any = None
    error: str = ""
    started: float = field(default_factory=time.perf_counter)
    finished: float = 0.0


class ReconstructionJob:
    """One photo reconstructed (or, with ``work=services.video.run``, one video tracked) in a daemon thread."""

    def __init__(self, photo: str | Path, work: Callable[..., Any] | None = None, label: str = "Face from Photo",
                 **options: Any) -> None:
        self.photo = Path(photo)
        self.work = work or reconstruct.run
        self.label = label
        self.options = options
        self.cancel_event = threading.Event()
        self.state = JobState()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._work, name="facerecon-reconstruct", daemon=True)

    def start(self) -> ReconstructionJob:
        self.thread.start()
        return self

    def _progress(self, stage: str, fraction: float) -> None:
        with self._lock:
            self.state.stage, self.state.fraction = stage, fraction

    def _work(self) -> None:
        try:
            result = self.work(self.photo, progress=self._progress, cancel=self.cancel_event, **self.options)
            status, error = (CANCELLED, "") if self.cancel_event.is_set() else (FINISHED, "")
        except reconstruct.Cancelled:
            result, status, error = None, CANCELLED, ""
        except reconstruct.ReconstructionFailed as exc:
            result, status, error = None, FAILED, str(exc)
        except BaseException as exc:  # noqa: BLE001 - never let the thread die silently
            result, status, error = None, FAILED, f"{self.photo.name}: {type(exc).__name__}: {reconstruct.one_line(exc)}"
        with self._lock:
            self.state.result = result if status == FINISHED else None
            self.state.status, self.state.error = status, error
            self.state.finished = time.perf_counter()

    def cancel(self) -> None:
        self.cancel_event.set()

    def snapshot(self) -> JobState:
        with self._lock:
            return JobState(**vars(self.state))


# The job the UI shows (one at a time).
CURRENT: ReconstructionJob | None = None


class ModalDriver:
    """The operator's modal logic: start, poll on TIMER events, cancel on Esc, build on success.

    ``on_progress(stage, fraction)`` updates the UI; ``on_done(result)`` builds the scene and returns
    a message; ``report(level, message)`` is the operator's ``self.report``.
    """

    def __init__(self, job: ReconstructionJob, *, on_progress: Callable[[str, float], None],
                 on_done: Callable[[Any], str], report: Callable[[set, str], None]) -> None:
        self.job = job
        self.on_progress = on_progress
        self.on_done = on_done
        self.report = report

    def start(self) -> None:
        global CURRENT
        CURRENT = self.job
        self.job.start()

    def event(self, event_type: str, event_value: str = "PRESS") -> set:
        """Handle one event; returns the operator's modal return set."""
        if event_type == "ESC" and event_value == "PRESS":
            self.job.cancel()
            self.report({"WARNING"}, f"{self.job.label}: cancelled ({self.job.photo.name})")
            return self._end({"CANCELLED"})
        if event_type != "TIMER":
            return {"PASS_THROUGH"}
        state = self.job.snapshot()
        if state.status == RUNNING:
            self.on_progress(state.stage, state.fraction)
            return {"RUNNING_MODAL"}
        if state.status == FINISHED:
            try:
                message = self.on_done(state.result)
            except Exception as exc:  # noqa: BLE001 - scene building failed: report, keep Blender up
                self.report({"ERROR"}, f"{self.job.label}: building the scene failed: "
                                       f"{type(exc).__name__}: {reconstruct.one_line(exc)}")
                return self._end({"CANCELLED"})
            self.report({"INFO"}, message)
            return self._end({"FINISHED"})
        if state.status == CANCELLED:
            self.report({"WARNING"}, f"{self.job.label}: cancelled ({self.job.photo.name})")
            return self._end({"CANCELLED"})
        self.report({"ERROR"}, f"{self.job.label}: {state.error}")
        return self._end({"CANCELLED"})

    def _end(self, ret: set) -> set:
        global CURRENT
        if CURRENT is self.job:
            CURRENT = None
        return ret
