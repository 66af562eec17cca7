"""``facerecon.import_video`` (File > Import > Face from Video): tracking in a worker thread with progress and
Esc-cancel in the UI, synchronous with ``-b``; ``facerecon.apply_arkit_csv``: drive the active face or head
from a Live Link Face CSV recorded elsewhere."""

from __future__ import annotations

import time
from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from ..services import job as job_service
from .operators import JobModal
from .options import MESHES

LABEL = "Face from Video"


def _video_glob() -> str:
    from ..services.video import VIDEO_GLOB

    return VIDEO_GLOB


def _build(op, context, track) -> str:
    from ..services import scene

    t0 = time.perf_counter()
    obj, _ = scene.build_track(track, camera=bool(op.add_camera), set_frames=bool(op.set_frames),
                               scene=context.scene)
    scene.select_only(context, [obj])
    missing = int((~track.has_face).sum())
    return (f"{LABEL}: {obj.name} ({track.n_frames} frames, {missing} without a face; "
            f"{track.timings['frames_per_s']:.1f} frames/s, import {time.perf_counter() - t0:.2f} s)")


class FACERECON_OT_import_video(JobModal, bpy.types.Operator):
    """Track a face through a video: one face (or head) with its ARKit shape keys and rotation keyframed"""

    bl_idname = "facerecon.import_video"
    bl_label = LABEL
    bl_options = {"REGISTER", "UNDO"}

    __annotations__ = {
        "filepath": StringProperty(name="Video", subtype="FILE_PATH", default=""),
        "filter_glob": StringProperty(default="*.mp4;*.mov;*.avi;*.mkv;*.webm;*.m4v", options={"HIDDEN"}),
        "mesh": EnumProperty(name="Mesh", items=MESHES, default="face",
                             description="The face alone, or the whole head around it"),
        "every": IntProperty(name="Every Nth frame", min=1, max=100, default=1,
                             description="Track every Nth frame (the keyframes then step by N)"),
        "max_frames": IntProperty(name="Max frames", min=0, default=0, description="At most this many frames (0: all)"),
        "smooth": BoolProperty(name="Smooth", default=True,
                               description="One Euro filter on the weights and the rotation (less jitter, "
                                           "about a frame of lag)"),
        "set_frames": BoolProperty(name="Set scene frames and rate", default=True,
                                   description="Make the scene's frame range and frame rate the video's"),
        "add_camera": BoolProperty(name="Video camera", default=True,
                                   description="A camera seeing the face as the video does, the video as its "
                                               "background clip"),
        "browse": BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"}),
    }

    _folder = None  # the decoded frames, removed when the import ends

    def invoke(self, context, event):
        if self.browse or not self.filepath:
            context.window_manager.fileselect_add(self)
            return {"RUNNING_MODAL"}
        return self.execute(context)

    def _options(self) -> dict:
        return {"mesh": str(self.mesh), "every": int(self.every), "max_frames": int(self.max_frames),
                "smooth": bool(self.smooth)}

    def execute(self, context):
        from ..services import reconstruct, video

        path = Path(bpy.path.abspath(self.filepath))
        if not path.is_file():
            self.report({"ERROR"}, f"{LABEL}: video not found: {path}")
            return {"CANCELLED"}
        if job_service.CURRENT is not None and job_service.CURRENT.thread.is_alive():
            self.report({"ERROR"}, f"{LABEL}: a reconstruction is already running (Esc cancels it)")
            return {"CANCELLED"}
        wm = context.window_manager
        wm.progress_begin(0, 100)
        try:  # Blender's FFmpeg decodes the frames the tracker needs (UI thread: it renders through bpy)
            self._folder = video.decoded(path, int(self.every), int(self.max_frames),
                                         lambda stage, fraction: wm.progress_update(int(100 * fraction)))
        except reconstruct.ReconstructionFailed as exc:
            wm.progress_end()
            self.report({"ERROR"}, f"{LABEL}: {exc}")
            return {"CANCELLED"}
        if bpy.app.background or getattr(context, "window", None) is None:
            try:
                track = video.run(self._folder, **self._options())
                self.report({"INFO"}, _build(self, context, track))
            except reconstruct.Cancelled:
                self.report({"WARNING"}, f"{LABEL}: cancelled")
                return {"CANCELLED"}
            except reconstruct.ReconstructionFailed as exc:
                self.report({"ERROR"}, f"{LABEL}: {exc}")
                return {"CANCELLED"}
            except Exception as exc:  # noqa: BLE001 - never take Blender down
                self.report({"ERROR"}, f"{LABEL}: building the scene failed: {type(exc).__name__}: {exc}")
                return {"CANCELLED"}
            finally:
                self._finish(context)
            return {"FINISHED"}
        job = job_service.ReconstructionJob(self._folder, work=video.run, label=LABEL, **self._options())
        return self._start_job(context, job, LABEL, path.name, lambda track: _build(self, context, track))

    def _cleanup(self) -> None:
        from ..services import video

        video.discard(self._folder)
        self._folder = None


class FACERECON_OT_apply_arkit_csv(bpy.types.Operator):
    """Drive the active object's ARKit shape keys (and its rotation) from a Live Link Face CSV"""

    bl_idname = "facerecon.apply_arkit_csv"
    bl_label = "Apply ARKit CSV"
    bl_options = {"REGISTER", "UNDO"}

    __annotations__ = {
        "filepath": StringProperty(name="CSV", subtype="FILE_PATH", default=""),
        "filter_glob": StringProperty(default="*.csv", options={"HIDDEN"}),
        "head_rotation": BoolProperty(name="Head rotation", default=True,
                                      description="Also keyframe the object's rotation from HeadYaw, HeadPitch and "
                                                  "HeadRoll"),
        "start_frame": IntProperty(name="Start frame", default=1, description="The scene frame of the CSV's first row"),
    }

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and obj.type == "MESH" and obj.data.shape_keys is not None

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        import numpy as np

        from ..services import reconstruct, scene, video

        obj = context.active_object
        try:
            times, columns = video.read_live_link(bpy.path.abspath(self.filepath))
        except reconstruct.ReconstructionFailed as exc:
            self.report({"ERROR"}, f"Apply ARKit CSV: {exc}")
            return {"CANCELLED"}
        rotations = None
        if self.head_rotation and {"HeadYaw", "HeadPitch", "HeadRoll"} <= set(columns):
            from facerecon_core.video.write import rotations as to_quaternions

            angles = np.stack([columns["HeadPitch"], columns["HeadYaw"], columns["HeadRoll"]], 1)
            rotations = to_quaternions(angles)
        fps = context.scene.render.fps / context.scene.render.fps_base
        shapes = {k: v for k, v in columns.items() if k[:1].islower()}
        keyed = scene.keyframe_performance(obj, times, shapes, fps, rotations, int(self.start_frame))
        if not keyed:
            self.report({"ERROR"}, f"Apply ARKit CSV: {obj.name} has none of the CSV's ARKit shape keys")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Apply ARKit CSV: {keyed} shape keys over {len(times)} rows on {obj.name}")
        return {"FINISHED"}


classes = (FACERECON_OT_import_video, FACERECON_OT_apply_arkit_csv)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
