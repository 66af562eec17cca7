"""``facerecon.reconstruct_from_photo``: modal (worker thread + timer) in the UI, synchronous with ``-b``."""

from __future__ import annotations

import time
from pathlib import Path

import bpy
from bpy.props import BoolProperty, CollectionProperty, StringProperty

from ..services import job as job_service
from .options import draw_options, option_properties

PHOTO_GLOB = "*.jpg;*.jpeg;*.png;*.bmp;*.tif;*.tiff;*.webp;*.JPG;*.JPEG;*.PNG"
TIMER_SECONDS = 0.1

# last run's timings (seconds), for the benchmark and the panel
LAST_TIMINGS: dict[str, float] = {}


def _options(op, more_photos: tuple = ()) -> dict:
    return {"refine": int(op.refine_steps), "all_faces": bool(op.all_faces), "texture_size": int(op.texture_size),
            "texture": str(op.texture_mode), "mesh": str(op.mesh),
            "mirror": bool(op.mirror), "shifts": bool(op.shifts), "more_photos": tuple(more_photos)}


def selected_photos(op) -> list[Path]:
    """The photos the file browser selected (several with Shift / Ctrl), else ``filepath``."""
    names = [f.name for f in getattr(op, "files", []) if f.name]
    if names and op.directory:
        return [Path(bpy.path.abspath(op.directory)) / name for name in names]
    return [Path(bpy.path.abspath(op.filepath))] if op.filepath else []


def _build(op, context, result) -> str:
    from ..services import scene

    t0 = time.perf_counter()
    objects, _ = scene.build_result(result, texture_size=int(op.texture_size), shape_keys=bool(op.shape_keys),
                                    bfm_keys=bool(op.bfm_keys),
                                    camera=bool(op.add_camera), match_render_size=bool(op.match_render_size),
                                    scene=context.scene)
    scene.select_only(context, objects)
    LAST_TIMINGS.clear()
    LAST_TIMINGS.update(result.timings)
    LAST_TIMINGS["import"] = time.perf_counter() - t0
    for warning in result.warnings:
        op.report({"WARNING"}, f"Face from Photo: {warning}")
    names = ", ".join(o.name for o in objects)
    return (f"Face from Photo: {names} ({len(objects)} face{'s' if len(objects) != 1 else ''}; inference "
            f"{result.timings.get('inference', 0):.1f} s, import {LAST_TIMINGS['import']:.2f} s)")


def _redraw(context) -> None:
    screen = getattr(context, "screen", None) or (context.window.screen if getattr(context, "window", None) else None)
    if screen is None:
        return
    for area in screen.areas:
        if area.type in ("STATUSBAR", "VIEW_3D"):
            area.tag_redraw()


class JobModal:
    """The modal part of an operator that runs a :class:`job_service.ReconstructionJob`: the progress bar and
    status text, Esc, the timer, and the end (``_cleanup`` for what the operator made for the job)."""

    _driver = None
    _timer = None

    def _start_job(self, context, job, label: str, name: str, on_done):
        wm = context.window_manager

        def on_progress(stage: str, fraction: float) -> None:
            wm.progress_update(int(100 * fraction))
            if context.workspace is not None:
                context.workspace.status_text_set(f"{label}: {name} — {stage} {100 * fraction:.0f}% (Esc to cancel)")
            _redraw(context)

        self._driver = job_service.ModalDriver(job, on_progress=on_progress, on_done=on_done, report=self.report)
        wm.progress_begin(0, 100)
        self._timer = wm.event_timer_add(TIMER_SECONDS, window=context.window)
        wm.modal_handler_add(self)
        self._driver.start()
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        ret = self._driver.event(event.type, event.value)
        if "RUNNING_MODAL" not in ret and "PASS_THROUGH" not in ret:
            self._finish(context)
        return ret

    def cancel(self, context):  # Blender closes the window / file while running
        if self._driver is not None:
            self._driver.job.cancel()
            self._driver._end(set())
        self._finish(context)

    def _cleanup(self) -> None:
        """What the operator made for the job goes (nothing here)."""

    def _finish(self, context) -> None:
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        self._cleanup()
        wm.progress_end()
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        _redraw(context)


class FACERECON_OT_reconstruct_from_photo(JobModal, bpy.types.Operator):
    """Reconstruct a 3D head from one photo, or from several photos of one person (BFM mesh, albedo texture,
    expression shape keys)"""

    bl_idname = "facerecon.reconstruct_from_photo"
    bl_label = "Face from Photo"
    bl_options = {"REGISTER", "UNDO"}

    __annotations__ = {
        "filepath": StringProperty(name="Photo", subtype="FILE_PATH", default="",
                                   description="The photo to reconstruct a face from"),
        "filter_glob": StringProperty(default=PHOTO_GLOB, options={"HIDDEN"}),
        "files": CollectionProperty(type=bpy.types.OperatorFileListElement, options={"HIDDEN", "SKIP_SAVE"}),
        "directory": StringProperty(subtype="DIR_PATH", options={"HIDDEN", "SKIP_SAVE"}),
        **option_properties(),
        "browse": BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"}),
    }

    def invoke(self, context, event):
        if self.browse or not self.filepath:
            context.window_manager.fileselect_add(self)
            return {"RUNNING_MODAL"}
        return self.execute(context)

    def draw(self, context):
        draw_options(self.layout, self)

    def execute(self, context):
        photos = selected_photos(self)
        missing = [p for p in photos if not p.is_file()]
        if not photos or missing:
            self.report({"ERROR"}, f"Face from Photo: photo not found: {missing[0] if missing else '(none)'}")
            return {"CANCELLED"}
        if len(photos) > 1 and not self.one_person:
            self.report({"ERROR"}, f"Face from Photo: {len(photos)} photos selected; tick \"One person\" to make one "
                                   "head of them, or select one photo (the batch script takes folders)")
            return {"CANCELLED"}
        photo, more = photos[0], tuple(photos[1:])
        if job_service.CURRENT is not None and job_service.CURRENT.thread.is_alive():
            self.report({"ERROR"}, "Face from Photo: a reconstruction is already running (Esc cancels it)")
            return {"CANCELLED"}
        window = getattr(context, "window", None)
        if bpy.app.background or window is None:
            return self._run_blocking(context, photo, more)
        return self._start_modal(context, photo, more)

    # ------------------------------------------------------------------ background: synchronous
    def _run_blocking(self, context, photo: Path, more: tuple = ()):
        from ..services import reconstruct

        try:
            result = reconstruct.run(photo, **_options(self, more))
        except reconstruct.Cancelled:
            self.report({"WARNING"}, "Face from Photo: cancelled")
            return {"CANCELLED"}
        except reconstruct.ReconstructionFailed as exc:
            self.report({"ERROR"}, f"Face from Photo: {exc}")
            return {"CANCELLED"}
        try:
            self.report({"INFO"}, _build(self, context, result))
        except Exception as exc:  # noqa: BLE001
            self.report({"ERROR"}, f"Face from Photo: building the scene failed: {type(exc).__name__}: {exc}")
            return {"CANCELLED"}
        return {"FINISHED"}

    # ---------------------------------------------------------------------- UI: modal + thread
    def _start_modal(self, context, photo: Path, more: tuple = ()):
        job = job_service.ReconstructionJob(photo, **_options(self, more))
        return self._start_job(context, job, "Face from Photo", photo.name, lambda result: _build(self, context, result))


class FACERECON_OT_cancel(bpy.types.Operator):
    """Cancel the running reconstruction"""

    bl_idname = "facerecon.cancel"
    bl_label = "Cancel"

    def execute(self, context):
        if job_service.CURRENT is not None:
            job_service.CURRENT.cancel()
        return {"FINISHED"}


def draw_status_progress(self, context) -> None:
    """Status bar: a progress bar while a reconstruction runs (UILayout.progress, Blender 4.0+)."""
    job = job_service.CURRENT
    if job is None:
        return
    state = job.snapshot()
    if state.status != job_service.RUNNING:
        return
    row = self.layout.row(align=True)
    row.progress(factor=state.fraction, type="BAR", text=f"Face from Photo: {state.stage}")
    row.operator(FACERECON_OT_cancel.bl_idname, text="", icon="CANCEL")


classes = (FACERECON_OT_reconstruct_from_photo, FACERECON_OT_cancel)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.STATUSBAR_HT_header.append(draw_status_progress)


def unregister() -> None:
    bpy.types.STATUSBAR_HT_header.remove(draw_status_progress)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
