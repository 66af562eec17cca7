"""Live Link Face's CSV layout (Epic's iOS capture app): ``Timecode``, ``BlendShapeCount``, the 52 ARKit blend
shapes (capitalised, ARKit's order), ``HeadYaw``, ``HeadPitch``, ``HeadRoll`` and each eye's yaw, pitch and roll
(radians), one row per frame; the timecode ``HH:MM:SS:FF.fff`` (frames at the video's rate, then the sub-frame).

We write every column (``TongueOut`` 0: the ICT model has no tongue key; the eyes' angles from the ``eyeLook*``
weights) and read any file in this layout, matching columns by name.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

LIVE_LINK_SHAPES = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft", "EyeSquintLeft",
    "EyeWideLeft", "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight", "EyeLookOutRight", "EyeLookUpRight",
    "EyeSquintRight", "EyeWideRight", "JawForward", "JawRight", "JawLeft", "JawOpen", "MouthClose", "MouthFunnel",
    "MouthPucker", "MouthRight", "MouthLeft", "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft",
    "MouthFrownRight", "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft", "MouthStretchRight",
    "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper", "MouthPressLeft", "MouthPressRight",
    "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft", "MouthUpperUpRight", "BrowDownLeft",
    "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft", "BrowOuterUpRight", "CheekPuff", "CheekSquintLeft",
    "CheekSquintRight", "NoseSneerLeft", "NoseSneerRight", "TongueOut",
)
POSE_COLUMNS = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll", "RightEyeYaw",
                "RightEyePitch", "RightEyeRoll")


class CsvError(ValueError):
    """A CSV that is not in Live Link Face's layout (one line naming what is missing)."""


def arkit_to_live_link(name: str) -> str:
    """``mouthSmileLeft`` → ``MouthSmileLeft``."""
    return name[:1].upper() + name[1:]


def timecode(seconds: float, fps: float) -> str:
    """``HH:MM:SS:FF.fff`` of a time in seconds at ``fps`` frames a second."""
    whole = int(np.floor(seconds))
    frame = (seconds - whole) * fps
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}:{int(frame):02d}.{int(1000 * (frame % 1)):03d}"


def eye_angles(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each eye's yaw and pitch (radians) from the ``eyeLook*`` weights (yaw toward the subject's left positive,
    pitch up positive); roll 0."""
    from facerecon_core.head.build import EYE_LOOK_DEG  # the head's eyeLook keys turn its eyeballs this far

    turn = {d: np.radians(v) for d, v in EYE_LOOK_DEG.items()}
    zero = np.zeros_like(next(iter(weights.values())))
    out = {}
    for side in ("Left", "Right"):
        w = {d: weights.get(f"eyeLook{d}{side}", zero) for d in ("In", "Out", "Up", "Down")}
        toward_left = (w["Out"] * turn["Out"] - w["In"] * turn["In"] if side == "Left"
                       else w["In"] * turn["In"] - w["Out"] * turn["Out"])
        out[f"{side}EyeYaw"] = toward_left
        out[f"{side}EyePitch"] = w["Up"] * turn["Up"] - w["Down"] * turn["Down"]
        out[f"{side}EyeRoll"] = zero
    return out


def write_csv(path: str | os.PathLike, times: np.ndarray, fps: float, names: list[str], weights: np.ndarray,
              angles: np.ndarray) -> Path:
    """Write the rows atomically: ``weights`` (T, K) of the ARKit keys ``names``, ``angles`` (T, 3) pitch, yaw, roll."""
    from facerecon_core.io.atomic import atomic_write_bytes

    by_name = {n: weights[:, i] for i, n in enumerate(names)}
    columns = {arkit_to_live_link(n): by_name.get(n, np.zeros(len(times))) for n in
               (s[:1].lower() + s[1:] for s in LIVE_LINK_SHAPES)}
    columns.update(HeadYaw=angles[:, 1], HeadPitch=angles[:, 0], HeadRoll=angles[:, 2], **eye_angles(by_name))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["Timecode", "BlendShapeCount", *LIVE_LINK_SHAPES, *POSE_COLUMNS])
    count = len(LIVE_LINK_SHAPES) + len(POSE_COLUMNS)
    for t in range(len(times)):
        writer.writerow([timecode(float(times[t]), fps), count,
                         *(f"{float(columns[c][t]):.6f}" for c in (*LIVE_LINK_SHAPES, *POSE_COLUMNS))])
    return atomic_write_bytes(path, text.getvalue().encode("utf-8"))


def read_csv(path: str | os.PathLike, fps: float | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(times in seconds (T,), column name → values (T,))`` of a Live Link Face CSV (the ARKit columns under
    ARKit's own names, ``mouthSmileLeft``; the pose columns as they are). ``fps`` reads the timecodes' frames
    (default: guessed from the largest frame number, 30 or 60)."""
    path = Path(path)
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError) as exc:
        raise CsvError(f"{path}: not a readable CSV ({exc})") from None
    if len(rows) < 2 or "Timecode" not in rows[0]:
        raise CsvError(f"{path}: not a Live Link Face CSV (no Timecode column or no rows)")
    header = rows[0]
    shapes = [c for c in header if c in LIVE_LINK_SHAPES]
    if not shapes:
        raise CsvError(f"{path}: no ARKit blend-shape column (EyeBlinkLeft, JawOpen, …)")
    body = [r for r in rows[1:] if len(r) == len(header)]
    codes = [r[header.index("Timecode")] for r in body]
    frames = np.array([[float(x) for x in c.replace(".", ":").split(":")[:4]] for c in codes])
    fps = fps or (60.0 if frames[:, 3].max(initial=0) >= 30 else 30.0)
    subframe = np.array([float("0." + c.split(".")[1]) if "." in c else 0.0 for c in codes])
    times = frames[:, 0] * 3600 + frames[:, 1] * 60 + frames[:, 2] + (frames[:, 3] + subframe) / fps
    times = times - times[0]
    values = {}
    for column in header:
        if column in LIVE_LINK_SHAPES or column in POSE_COLUMNS:
            name = column[:1].lower() + column[1:] if column in LIVE_LINK_SHAPES else column
            values[name] = np.array([float(r[header.index(column)]) for r in body])
    return times, values
