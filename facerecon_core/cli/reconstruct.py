"""``facerecon reconstruct``: photos (files or folders, recursive) → 3D faces (OBJ / GLB / PLY / NPZ + overlay)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from facerecon_core import paths

DEFAULT_FORMATS = "obj,glb,ply,npz"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "reconstruct", help="reconstruct 3D faces from photos",
        description="Reconstruct the largest face (or all faces) of each photo. PATH: photo files or folders "
                    "(searched recursively). Per face, OUTDIR gets NAME.obj + NAME.mtl + NAME_albedo.png, NAME.glb "
                    "(morph target 'Expression'), NAME.ply, NAME.npz (as chosen with --format) and always "
                    "NAME_overlay.png; NAME is the photo's name, with _face1, _face2, … when there are several "
                    "faces. Bad inputs are reported and skipped; the exit code is 0 only when every input "
                    "succeeded (1 otherwise, 2 for a usage or model error).")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="photo files or folders")
    parser.add_argument("-o", "--out", type=Path, required=True, metavar="OUTDIR", help="output folder")
    parser.add_argument("--model", type=Path, default=None,
                        help=f"model bundle folder (default: ${paths.MODEL_ENV}, else facerecon_core/data/model/)")
    parser.add_argument("--facemodel", type=Path, default=None,
                        help=f"face-model asset (default: ${paths.FACEMODEL_ENV}, else facerecon_core/data/facemodel.npz)")
    parser.add_argument("--format", default=DEFAULT_FORMATS,
                        help=f"comma-separated output formats among obj, glb, ply, npz (default: {DEFAULT_FORMATS})")
    parser.add_argument("--texture-size", type=int, default=512, help="albedo texture side in pixels (default 512)")
    parser.add_argument("--texture", choices=("photo", "network"), default="photo",
                        help="the albedo texture: the photo's own detail, de-lit, wherever the photo shows the face, "
                             "blended with the texture stream's map elsewhere (default), or that map alone")
    parser.add_argument("--refine", type=int, default=0, metavar="N",
                        help="N steps of photometric refinement after the network (needs torch; default 0)")
    parser.add_argument("--light", choices=("fit", "network"), default="fit",
                        help="the SH light of the overlay and the .npz/.blend: fitted to the photo on the "
                             "reconstructed face and texture (default) or the network's prediction as it is")
    parser.add_argument("--no-mirror", action="store_true",
                        help="run the geometry stream on each crop only (default: averaged with its mirror image)")
    parser.add_argument("--no-shifts", action="store_true",
                        help="no averaging over shifted crops (default: the crop and four copies shifted by 1/64 "
                             "of its size)")
    parser.add_argument("--recrop", action="store_true",
                        help="a second network pass on the crop around the first pass's landmarks (off by default: "
                             "it makes the bundled model's landmarks worse, see MODEL_CARD.md)")
    parser.add_argument("--all-faces", action="store_true", help="reconstruct every face, not only the largest")
    parser.add_argument("--same-person", action="store_true",
                        help="the photos show one person: one head (one identity, a texture combining what each "
                             "photo shows) with each photo's expression as a morph target named after the photo; "
                             "writes OUTDIR/NAME.* and NAME_PHOTO_overlay.png per photo")
    parser.add_argument("--name", default=None,
                        help="with --same-person: the output's name (default: the first photo's)")
    parser.add_argument("--mesh", choices=("face", "head"), default="face",
                        help="face: the face model's mesh (default); head: the whole head around it (ICT Face Model: "
                             "skull, neck, ears, eyes, teeth, gums, eyelashes; no hair), its 51 ARKit keys at the "
                             "photo's weights, its own UV layout and textures (needs `facerecon assets head`)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--runtime", choices=("onnx", "torch"), default="onnx",
                        help="network runtime: onnxruntime (default, no torch) or torch")
    parser.set_defaults(run=_run)


def _error(message: str) -> int:
    print(f"facerecon reconstruct: error: {message}", file=sys.stderr)
    return 2


def output_names(photos: list[Path]) -> dict[Path, str]:
    """Output base names: the photo's stem; photos sharing a stem get ``_2``, ``_3``, … in order."""
    from facerecon_core.pipeline.same_person import unique_names

    return dict(zip(photos, unique_names([p.stem for p in photos])))


def collect(entries: list[Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Photos among the PATH arguments, and (path, message) of the arguments that failed."""
    from facerecon_core.io.photo import PhotoError, find_photos

    photos: dict[Path, None] = {}
    failed: list[tuple[str, str]] = []
    for entry in entries:
        try:
            photos.update(dict.fromkeys(find_photos(entry)))
        except PhotoError as exc:
            failed.append((str(entry), str(exc)))
    return list(photos), failed


def _run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from facerecon_core.export import FORMATS, write_all
    from facerecon_core.facemodel import FaceModelError
    from facerecon_core.head.rig import HeadError
    from facerecon_core.inference import BundleError

    formats = [f.strip().lower().lstrip(".") for f in args.format.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        what = ", ".join(unknown) if unknown else repr(args.format)
        return _error(f"unknown --format {what}; choose from {', '.join(FORMATS)}")
    if args.texture_size < 8 or args.texture_size > 8192:
        return _error(f"--texture-size {args.texture_size}: expected 8 … 8192")
    if args.refine < 0:
        return _error(f"--refine {args.refine}: expected N >= 0")
    if args.out.exists() and not args.out.is_dir():
        return _error(f"{args.out}: exists and is not a folder")
    if args.same_person and args.all_faces:
        return _error("--same-person takes the largest face of each photo; drop --all-faces")
    if args.name is not None and (not args.same_person or not args.name or Path(args.name).name != args.name):
        return _error(f"--name {args.name!r}: a plain file name, with --same-person")

    start = time.perf_counter()
    photos, failed = collect(args.paths)
    for _, message in failed:
        print(f"facerecon reconstruct: {message}", file=sys.stderr)
    done: list[tuple[Path, int]] = []
    if photos:
        from facerecon_core.pipeline import Reconstructor

        try:
            reconstructor = Reconstructor(args.model, facemodel=args.facemodel, runtime=args.runtime,
                                          device=args.device, texture_size=args.texture_size, refine=args.refine,
                                          mirror=not args.no_mirror, shifts=not args.no_shifts,
                                          recrop=args.recrop, light=args.light, texture=args.texture,
                                          mesh=args.mesh)
        except (BundleError, FaceModelError, HeadError) as exc:
            return _error(str(exc))
        if args.same_person:
            return _same_person(reconstructor, photos, failed, args, formats, start)
        names = output_names(photos)
        bar = tqdm(photos, desc="reconstruct", unit="photo", disable=None)
        for photo in bar:
            bar.set_postfix_str(photo.name)
            try:
                faces = _reconstruct_one(reconstructor, photo, names[photo], args, formats, write_all, bar)
            except Exception as exc:  # one bad photo must not stop the batch
                message = str(exc) if str(photo) in str(exc) else f"{photo}: {type(exc).__name__}: {exc}"
                message = message.splitlines()[0] if message else str(photo)
                failed.append((str(photo), message))
                tqdm.write(f"facerecon reconstruct: {message}", file=sys.stderr)
                continue
            done.append((photo, faces))
        bar.close()

    n_faces = sum(n for _, n in done)
    total = len(done) + len(failed)
    print(f"facerecon reconstruct: {len(done)} of {total} input(s) done ({n_faces} face(s)) in "
          f"{time.perf_counter() - start:.1f} s, output in {args.out}"
          + (f"; {len(failed)} failed:" if failed else ""))
    for _, message in failed:
        print(f"  {message}")
    return 0 if not failed and done else 1


def _reconstruct_one(reconstructor, photo: Path, name: str, args, formats, write_all, bar) -> int:
    """Reconstruct and write one photo's faces; on failure nothing of this photo is left on disk."""
    from tqdm.auto import tqdm

    from facerecon_core.pipeline.detect import load_image

    image, source = load_image(photo)

    def on_step(step: int, steps: int, terms: dict[str, float]) -> None:
        bar.set_postfix_str(f"{photo.name} refine {step + 1}/{steps} "
                            + " ".join(f"{k}={v:.3g}" for k, v in terms.items()))

    recs = reconstructor.reconstruct(image, all_faces=args.all_faces, source=source, on_refine_step=on_step)
    written: list[Path] = []
    try:
        for k, rec in enumerate(recs, start=1):
            t0 = time.perf_counter()
            face_name = name if len(recs) == 1 else f"{name}_face{k}"
            written += write_all(rec, image, args.out, face_name, formats, texture_size=args.texture_size)
            rec.timings["write"] = (time.perf_counter() - t0) * 1000.0
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    if args.refine and reconstructor.last_run:
        losses = reconstructor.last_run[0].refine_losses
        tqdm.write(f"{photo}: refined {args.refine} steps: " + " ".join(f"{k}={v:.4g}" for k, v in losses.items()),
                   file=sys.stderr)
    return len(recs)


def _same_person(reconstructor, photos: list[Path], failed: list[tuple[str, str]], args, formats, start: float) -> int:
    """One head of all the photos (``--same-person``); nothing is written when it fails."""
    from tqdm.auto import tqdm

    from facerecon_core.export import write_all, write_overlay

    bar = tqdm(total=100, desc="same person", unit="%", disable=None)

    def progress(stage: str, fraction: float) -> None:
        bar.n = round(100 * fraction)
        bar.set_postfix_str(stage)
        bar.refresh()

    try:
        person = reconstructor.reconstruct_person(photos, name=args.name, progress=progress)
    except Exception as exc:  # every photo failed: the first one's reason
        bar.close()
        print(f"facerecon reconstruct: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
              file=sys.stderr)
        return 1
    bar.close()
    failed += person.skipped
    written: list[Path] = []
    try:
        written += write_all(person.reconstruction(), None, args.out, person.name, formats,
                             texture_size=args.texture_size)
        for name, rec in zip(person.names, person.photos):  # each photo's expression and pose on the shared head
            written.append(write_overlay(rec, rec.source, args.out / f"{person.name}_{name}_overlay.png"))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    shares = ", ".join(f"{n} {w:.2f}" for n, w in zip(person.names, person.weights))
    inputs = len(photos) + len(failed) - len(person.skipped)  # failed: the arguments' and the photos' failures
    print(f"facerecon reconstruct: one person from {len(person.photos)} of {inputs} "
          f"input(s) in {time.perf_counter() - start:.1f} s (identity shares: {shares}), output "
          f"{args.out / person.name}.*" + (f"; {len(failed)} failed:" if failed else ""))
    for _, message in failed:
        print(f"  {message}")
    return 0 if not failed else 1
