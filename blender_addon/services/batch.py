"""Headless batch: every photo of a folder → one .blend (and optionally one .glb) per face; with
``--same-person``, all of them → one head; every video → one .blend of the tracked face, animated (and with
``--glb`` its NAME.glb and NAME.csv, Live Link Face's layout).

Runs in ``blender -b`` and in plain Python with the ``bpy`` module; see ``scripts/batch_reconstruct.py``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="batch_reconstruct.py",
                                     description="Reconstruct every photo of a folder into .blend files (and GLB).")
    parser.add_argument("--input", required=True, type=Path, help="folder of photos and videos (or one file)")
    parser.add_argument("--output", required=True, type=Path, help="output folder")
    parser.add_argument("--refine", type=int, default=0, help="photometric refinement steps (needs PyTorch)")
    parser.add_argument("--glb", action="store_true", help="also write NAME.glb per face")
    parser.add_argument("--all-faces", action="store_true", help="every face of a photo, not only the largest")
    parser.add_argument("--texture-size", type=int, default=1024)
    parser.add_argument("--texture", choices=("photo", "network"), default="photo",
                        help="the photo's own detail blended with the texture stream's map (default), or the map alone")
    parser.add_argument("--mesh", choices=("face", "head"), default="face",
                        help="face (default) or head: the whole head around the face with eyes, teeth, its ARKit keys")
    parser.add_argument("--no-camera", action="store_true", help="no photo camera in the .blend")
    parser.add_argument("--match-render-size", action="store_true",
                        help="set each .blend's render resolution to its photo's size (default: Blender's own)")
    parser.add_argument("--no-mirror", action="store_true",
                        help="run the network on the photo only (default: averaged with the mirrored photo)")
    parser.add_argument("--no-shifts", action="store_true",
                        help="no averaging over shifted crops (default: the crop and four slightly shifted copies)")
    parser.add_argument("--no-shape-keys", action="store_true", help="no shape keys (default: the ARKit keys and "
                        "the expression residual)")
    parser.add_argument("--bfm-keys", action="store_true",
                        help="also the face model's expression components exp_NN as shape keys (at 0)")
    parser.add_argument("--same-person", action="store_true",
                        help="the photos show one person: one .blend (NAME.blend, and NAME.glb with --glb) of one "
                             "head, each photo's expression a shape key named after the photo")
    parser.add_argument("--name", default=None, help="with --same-person: the output's name (default: the first "
                                                     "photo's)")
    parser.add_argument("--model", type=Path, default=None, help="model bundle folder (default: the bundled one)")
    parser.add_argument("--facemodel", type=Path, default=None, help="face-model asset (default: the bundled one)")
    return parser.parse_args(argv)


def list_photos(folder: Path) -> list[Path]:
    from facerecon_core.io.photo import SUPPORTED_EXTENSIONS

    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise SystemExit(f"batch_reconstruct: input {folder} is not a folder or file")
    from .video import VIDEO_EXTENSIONS

    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                  and (p.suffix.lower() in SUPPORTED_EXTENSIONS | set(VIDEO_EXTENSIONS) or p.suffix == ""))


def _video(video: Path, args: argparse.Namespace) -> list[str]:
    """Track ``video`` into ``NAME.blend`` (and, with ``--glb``, NAME.glb and NAME.csv); the written names."""
    import bpy

    from . import scene
    from . import video as video_service

    folder = video_service.decoded(video)  # Blender's own FFmpeg: the add-on ships without OpenCV
    try:
        track = video_service.run(folder, mesh=args.mesh, texture_size=args.texture_size, bundle_dir=args.model,
                                  facemodel=args.facemodel)
    finally:
        video_service.discard(folder)
    bpy.ops.wm.read_homefile(use_empty=True)
    scene.build_track(track, camera=not args.no_camera, scene=bpy.context.scene)
    blend = args.output / f"{track.name}.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), check_existing=False, compress=True)
    written = [blend.name]
    if args.glb:
        from facerecon_core.video.write import write_track

        written += [p.name for p in write_track(track, args.output, formats=("glb", "csv"))]
    return written


def main(argv: list[str]) -> int:
    import bpy

    from . import reconstruct, scene
    from .video import VIDEO_EXTENSIONS

    args = parse_args(argv)
    photos = list_photos(args.input)
    videos = [p for p in photos if p.suffix.lower() in VIDEO_EXTENSIONS]
    photos = [p for p in photos if p not in videos]
    if args.same_person and args.all_faces:
        raise SystemExit("batch_reconstruct: --same-person takes the largest face of each photo; drop --all-faces")
    args.output.mkdir(parents=True, exist_ok=True)
    rows, failed = [], 0
    start = time.perf_counter()
    jobs = [(photos[0], tuple(photos[1:]))] if args.same_person and photos else [(p, ()) for p in photos]
    for video in videos:
        t0 = time.perf_counter()
        try:
            written = _video(video, args)
        except (reconstruct.ReconstructionFailed, reconstruct.Cancelled) as exc:
            failed += 1
            rows.append(("FAILED", video.name, str(exc) or "cancelled", time.perf_counter() - t0))
            print(f"[facerecon] FAILED {video.name}: {exc}", flush=True)
            continue
        rows.append(("OK", video.name, ", ".join(written), time.perf_counter() - t0))
        print(f"[facerecon] OK {video.name} -> {', '.join(written)}", flush=True)
    for photo, more in jobs:
        t0 = time.perf_counter()
        try:
            result = reconstruct.run(photo, refine=args.refine, all_faces=args.all_faces,
                                     texture_size=args.texture_size, texture=args.texture,
                                     mirror=not args.no_mirror,
                                     shifts=not args.no_shifts,
                                     bundle_dir=args.model, facemodel=args.facemodel, more_photos=more,
                                     mesh=args.mesh)
        except (reconstruct.ReconstructionFailed, reconstruct.Cancelled) as exc:
            failed += 1
            rows.append(("FAILED", photo.name, str(exc) or "cancelled", time.perf_counter() - t0))
            print(f"[facerecon] FAILED {photo.name}: {exc}", flush=True)
            continue
        written = []
        try:
            from facerecon_core.export import write_glb
            from facerecon_core.export.blender import object_name

            for i, rec in enumerate(result.faces):
                name = args.name if more and args.name else object_name(rec.source or str(photo), i, len(result.faces))
                bpy.ops.wm.read_homefile(use_empty=True)
                one = replace(result, faces=[rec])
                objects, _ = scene.build_result(one, texture_size=args.texture_size,
                                                shape_keys=not args.no_shape_keys, bfm_keys=args.bfm_keys,
                                                camera=not args.no_camera,
                                                match_render_size=args.match_render_size, scene=bpy.context.scene)
                objects[0].name = name
                blend = args.output / f"{name}.blend"
                bpy.ops.wm.save_as_mainfile(filepath=str(blend), check_existing=False, compress=True)
                written.append(blend.name)
                if args.glb:
                    from facerecon_core.export._common import resize_texture

                    glb = write_glb(replace(rec, albedo=resize_texture(rec.albedo, args.texture_size)),
                                    args.output / f"{name}.glb")
                    written.append(Path(glb).name)
            for warning in result.warnings:
                print(f"[facerecon] warning {photo.name}: {warning}", flush=True)
            label = f"{photo.name} + {len(more)} more (one person)" if more else photo.name
            rows.append(("OK", label, ", ".join(written), time.perf_counter() - t0))
            print(f"[facerecon] OK {label} -> {', '.join(written)}", flush=True)
        except Exception as exc:  # noqa: BLE001 - one bad photo must not stop the batch
            failed += 1
            rows.append(("FAILED", photo.name, f"writing failed: {type(exc).__name__}: {reconstruct.one_line(exc)}",
                         time.perf_counter() - t0))
            print(f"[facerecon] FAILED {photo.name}: {rows[-1][2]}", flush=True)
    total = time.perf_counter() - start
    print("\nfacerecon batch summary")
    print("| status | photo | output / reason | seconds |\n|---|---|---|---|")
    for status, name, what, seconds in rows:
        print(f"| {status} | {name} | {what} | {seconds:.1f} |")
    inputs = len(photos) + len(videos)
    counted = f"{len(photos)} photos" + (f", {len(videos)} videos" if videos else "")
    print(f"{counted}: {inputs - failed} ok, {failed} failed, {total:.1f} s", flush=True)
    if not inputs:
        print("no photos or videos found", flush=True)
        return 2
    return 1 if failed else 0
