"""Build the installable Blender add-on zip (extension + legacy add-on) for one platform.

    python build_addon.py [--platform linux-x64|windows-x64|macos-arm64|macos-x64] [--out dist/]
                          [--model DIR] [--facemodel FILE] [--wheel-cache DIR]

The zip holds one folder ``facerecon/`` (Blender's extension installer and the legacy add-on
installer both accept that) with:

- the add-on (``blender_addon/``: ``__init__.py`` with ``bl_info``, ``services/``, ``ui/``, ``scripts/``)
  and a ``blender_manifest.toml`` listing the platform and the wheels;
- ``wheels/``: the torch-free inference part of ``facerecon_core`` as a pure-Python wheel (the
  modules reachable from the pipeline and the writers, minus train / model / datasets / fitting /
  render and everything that imports torch; checked by an import graph: nothing shipped imports
  torch at module level, and every module-level ``facerecon_core`` import is shipped) and the
  third-party wheels it needs for the platform (``pip download --only-binary=:all: --platform …
  --python-version 3.11 --no-deps``: onnxruntime, dlib-bin, pillow; face-recognition-models has no wheel on
  PyPI, so one is built from its sdist, keeping only the CNN detector and the 68-point predictor in its compact
  form); the zip must stay within 100 MB (``MAX_ZIP_BYTES``), and the build prints its largest parts;
- ``data/model/``: the exported model bundle (ONNX graphs and manifest; the torch weights are left
  out) from ``--model`` or the default bundle location ``facerecon_core/data/model/``;
- ``data/facemodel.npz``: the BFM-derived face-model asset without its identity basis, which inference does not
  read (non-commercial; see LICENSE.txt), with the ARKit keys derived from the ICT Face Model (MIT; its notice
  in ``data/ICT-FaceKit-LICENSE.txt``); ``data/head.npz``, the head rig ("Whole head": the ICT head around the
  face model, built beside the asset by ``facerecon assets build``).

Nothing is installed with pip or downloaded at run time.
"""

from __future__ import annotations

import argparse
import ast
import base64
import hashlib
import json
import os
import platform as host_platform
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent
ADDON_SRC = REPO / "blender_addon"
PACKAGE = "facerecon_core"
ADDON_ID = "facerecon"

# What the add-on reconstructs with: the pipeline, the writers, the Blender scene maths, face from video.
ENTRY_MODULES = ["facerecon_core", "facerecon_core.pipeline", "facerecon_core.export",
                 "facerecon_core.export.blender", "facerecon_core.reconstruction", "facerecon_core.paths",
                 "facerecon_core.video.track", "facerecon_core.video.write", "facerecon_core.video.livelink"]
# Never shipped (training, torch model, datasets, fitting, the renderer, the CLI, torch-only paths).
EXCLUDED = ["facerecon_core.train", "facerecon_core.model", "facerecon_core.datasets", "facerecon_core.fitting",
            "facerecon_core.render", "facerecon_core.cli", "facerecon_core.__main__",
            "facerecon_core.inference.export", "facerecon_core.inference.torch_runtime",
            "facerecon_core.pipeline.refine", "facerecon_core.facemodel.preview", "facerecon_core.facemodel.build",
            "facerecon_core.texture"]
FORBIDDEN_AT_MODULE_LEVEL = {"torch", "torchvision", "nvdiffrast", "trimesh", "onnx"}

# Modules Blender ships (so no wheel): numpy and the standard library.
BLENDER_BUNDLED = {"numpy", "bpy", "mathutils", "requests", "certifi", "idna", "urllib3", "charset_normalizer",
                   "zstandard"}

PLATFORMS = {
    "linux-x64": ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                  "manylinux2014_x86_64"],
    "windows-x64": ["win_amd64"],
    "macos-arm64": ["macosx_14_0_arm64", "macosx_13_0_arm64", "macosx_12_0_arm64", "macosx_11_0_arm64"],
    "macos-x64": ["macosx_13_0_x86_64", "macosx_12_0_x86_64", "macosx_11_0_x86_64", "macosx_10_15_x86_64",
                  "macosx_10_14_x86_64", "macosx_10_13_x86_64", "macosx_10_10_x86_64", "macosx_10_9_x86_64"],
}

# import name -> pip requirement; versions are the ones tested with numpy 1.26 (Blender 4.2 – 5.0). Only what the
# reconstruction runs: OpenCV and SciPy serve training and evaluation (facerecon_core.imageops does the image work).
WHEELS = {
    "onnxruntime": "onnxruntime==1.32.0",
    "dlib": "dlib-bin==20.0.1.post1",
    "PIL": "pillow==13.0.0",
}
# Older pins where the tested version has no wheel for the platform.
PLATFORM_PINS = {
    "macos-x64": {"onnxruntime": "onnxruntime==1.23.2", "dlib": "dlib-bin==19.24.6"},
}
FACE_MODELS_REQ = "face-recognition-models==0.3.0"
FACE_MODELS_KEEP = {"mmod_human_face_detector.dat"}  # and the 68-point predictor, compact (facerecon_core.detect)
FACE_MODELS_LOCAL = "compact68"  # the slim wheel's local version label
MAX_ZIP_BYTES = 100 * 10**6  # one platform's zip
BUNDLE_FILES_SKIPPED = {"weights.safetensors"}  # torch runtime only


class BuildError(RuntimeError):
    pass


# --------------------------------------------------------------------------------- import graph
@dataclass
class ModuleInfo:
    name: str
    path: Path
    is_package: bool
    top_level: set[str] = field(default_factory=set)  # imported at module level (absolute names)
    lazy: set[str] = field(default_factory=set)  # imported inside functions / try blocks


def _module_path(name: str) -> tuple[Path, bool] | None:
    rel = Path(*name.split("."))
    if (REPO / rel / "__init__.py").is_file():
        return REPO / rel / "__init__.py", True
    if (REPO / rel).with_suffix(".py").is_file():
        return (REPO / rel).with_suffix(".py"), False
    return None


def _resolve(info_name: str, is_package: bool, node: ast.AST) -> list[str]:
    names = []
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = info_name.split(".") if is_package else info_name.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        names = [module] + [f"{module}.{alias.name}" for alias in node.names]
    return names


def parse_module(name: str) -> ModuleInfo:
    found = _module_path(name)
    if found is None:
        raise BuildError(f"module {name} not found")
    path, is_package = found
    tree = ast.parse(path.read_text(), str(path))
    info = ModuleInfo(name, path, is_package)

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                if isinstance(child, ast.ImportFrom) and child.module == "__future__":
                    continue
                (info.top_level if top else info.lazy).update(_resolve(name, is_package, child))
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, False)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                continue
            elif isinstance(child, ast.Try):
                visit(child, False)  # optional imports (try / except ImportError)
            else:
                visit(child, top)

    visit(tree, True)
    return info


def _is_type_checking(test: ast.AST) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _excluded(name: str) -> bool:
    return any(name == e or name.startswith(e + ".") for e in EXCLUDED)


def _own_module(name: str) -> str | None:
    """The facerecon_core module a dotted import name refers to (``a.b.func`` → ``a.b``), or None."""
    if name.split(".")[0] != PACKAGE:
        return None
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if _module_path(candidate) is not None:
            return candidate
        parts.pop()
    return None


@dataclass
class ImportGraph:
    shipped: dict[str, ModuleInfo]
    skipped: dict[str, str]  # module -> why it is not shipped
    third_party_top: dict[str, set[str]]  # top-level name -> shipped modules importing it at module level
    third_party_lazy: dict[str, set[str]]

    def problems(self) -> list[str]:
        out = []
        for mod in sorted(self.shipped):
            info = self.shipped[mod]
            for name in sorted(info.top_level):
                top = name.split(".")[0]
                if top in FORBIDDEN_AT_MODULE_LEVEL:
                    out.append(f"{mod} imports {name} at module level")
                own = _own_module(name)
                if own is not None and own not in self.shipped:
                    out.append(f"{mod} imports {own} at module level, which is not shipped "
                               f"({self.skipped.get(own, 'unknown')})")
        return out


def import_graph(entries: list[str] = ENTRY_MODULES) -> ImportGraph:
    """Modules reachable from ``entries`` (module-level and lazy imports), minus the excluded ones."""
    shipped: dict[str, ModuleInfo] = {}
    skipped: dict[str, str] = {}
    todo = list(entries)
    while todo:
        name = todo.pop()
        if name in shipped or name in skipped:
            continue
        if _excluded(name):
            skipped[name] = "excluded (training / torch / renderer)"
            continue
        info = parse_module(name)
        torch_top = sorted(n for n in info.top_level if n.split(".")[0] in FORBIDDEN_AT_MODULE_LEVEL)
        if torch_top:
            skipped[name] = f"imports {torch_top[0]} at module level"
            continue
        shipped[name] = info
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages
        for imported in info.top_level | info.lazy:
            own = _own_module(imported)
            if own is not None:
                todo.append(own)
    third_top: dict[str, set[str]] = {}
    third_lazy: dict[str, set[str]] = {}
    stdlib = set(sys.stdlib_module_names)
    for mod, info in shipped.items():
        for names, target in ((info.top_level, third_top), (info.lazy, third_lazy)):
            for name in names:
                top = name.split(".")[0]
                if top and top != PACKAGE and top not in stdlib:
                    target.setdefault(top, set()).add(mod)
    return ImportGraph(shipped, skipped, third_top, third_lazy)


# -------------------------------------------------------------------------------------- wheels
def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def write_wheel(path: Path, dist: str, version: str, files: dict[str, bytes], tag: str = "py3-none-any",
                requires: list[str] = ()) -> Path:
    """A minimal, valid wheel (PEP 427) of ``files`` (arcname → bytes)."""
    dist_info = f"{dist}-{version}.dist-info"
    metadata = ["Metadata-Version: 2.1", f"Name: {dist}", f"Version: {version}"]
    metadata += [f"Requires-Dist: {r}" for r in requires]
    files = dict(files)
    files[f"{dist_info}/METADATA"] = ("\n".join(metadata) + "\n").encode()
    files[f"{dist_info}/WHEEL"] = (f"Wheel-Version: 1.0\nGenerator: facerecon build_addon\nRoot-Is-Purelib: true\n"
                                   f"Tag: {tag}\n").encode()
    files[f"{dist_info}/top_level.txt"] = b"\n".join(sorted({a.split("/")[0].encode() for a in files
                                                            if not a.startswith(dist_info)})) + b"\n"
    record = [_record_line(a, d) for a, d in sorted(files.items())] + [f"{dist_info}/RECORD,,"]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for arcname, data in sorted(files.items()):
            info = zipfile.ZipInfo(arcname, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
        archive.writestr(zipfile.ZipInfo(f"{dist_info}/RECORD", date_time=(2024, 1, 1, 0, 0, 0)),
                         "\n".join(record) + "\n")
    return path


def build_core_wheel(graph: ImportGraph, out_dir: Path, version: str) -> Path:
    files = {}
    for name, info in sorted(graph.shipped.items()):
        arc = info.path.relative_to(REPO).as_posix()
        files[arc] = info.path.read_bytes()
    dist = "facerecon_core_runtime"
    return write_wheel(out_dir / f"{dist}-{version}-py3-none-any.whl", dist, version, files)


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise BuildError(f"pip {' '.join(args[:1])} failed for {args[-1]}: " + " / ".join(tail))


def _find(cache: Path, dist: str, version: str, tags: list[str] | None) -> Path | None:
    prefix = f"{dist.replace('-', '_').lower()}-{version}-"
    for wheel in sorted(cache.glob("*.whl")):
        if not wheel.name.lower().startswith(prefix):
            continue
        if tags is None or any(tag in wheel.name for tag in tags) or wheel.name.endswith("-none-any.whl"):
            return wheel
    return None


def download_wheel(requirement: str, platform: str, cache: Path) -> Path:
    dist, version = requirement.split("==")
    tags = PLATFORMS[platform]
    found = _find(cache, dist, version, tags)
    if found is None:
        platform_args = [arg for tag in tags for arg in ("--platform", tag)]
        _pip("download", "--quiet", "--only-binary=:all:", *platform_args, "--python-version", "3.11",
             "--implementation", "cp", "--no-deps", "-d", str(cache), requirement)
        found = _find(cache, dist, version, tags)
    if found is None:
        raise BuildError(f"no {platform} wheel of {requirement} found after pip download")
    return found


def face_models_wheel(cache: Path) -> Path:
    """face-recognition-models as a pure wheel with only what facerecon runs: the CNN detector, and the 68-point
    predictor in its compact form (8-bit leaves: 16 MB instead of 100; dlib's file is written from it on first
    use, see facerecon_core.detect.models.shape_predictor_path)."""
    from facerecon_core.detect.dlib_predictor import read_predictor
    from facerecon_core.detect.models import SHAPE_PREDICTOR_COMPACT, SHAPE_PREDICTOR_FILE

    dist, version = FACE_MODELS_REQ.split("==")
    version = f"{version}+{FACE_MODELS_LOCAL}"
    slim = cache / f"face_recognition_models-{version}-py3-none-any.whl"
    if slim.is_file():
        return slim
    with tempfile.TemporaryDirectory() as tmp:
        _pip("wheel", "--quiet", "--no-deps", "-w", tmp, FACE_MODELS_REQ)
        built = next(Path(tmp).glob("face_recognition_models-*.whl"))
        files = {}
        with zipfile.ZipFile(built) as archive:
            for name in archive.namelist():
                if ".dist-info/" in name:
                    continue
                if Path(name).name == SHAPE_PREDICTOR_FILE:
                    compact, _ = read_predictor(archive.read(name))
                    compact.save(Path(tmp) / SHAPE_PREDICTOR_COMPACT)
                    files[str(Path(name).with_name(SHAPE_PREDICTOR_COMPACT))] = \
                        (Path(tmp) / SHAPE_PREDICTOR_COMPACT).read_bytes()
                    continue
                if name.endswith(".dat") and Path(name).name not in FACE_MODELS_KEEP:
                    continue
                files[name] = archive.read(name)
    return write_wheel(slim, "face_recognition_models", version, files)


def runtime_facemodel(facemodel: Path, out: Path) -> tuple[Path, str]:
    """The face-model asset as inference reads it: without the identity basis (used only by fitting, training
    and torch refinement), which is 18 of its 23 MB. Its content hash still names the model the bundle was
    trained on. Also returns its ICT licence notice ("" without ARKit keys)."""
    import numpy as np

    with np.load(facemodel, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    arrays["id_basis"] = arrays["id_basis"][:0]
    arrays["id_scale"] = arrays["id_scale"][:0]
    with open(out, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return out, str(arrays.get("arkit_notice", ""))


def _head_notice(path: Path) -> str:
    """The licence notice stored in a head rig."""
    import numpy as np

    with np.load(path, allow_pickle=False) as data:
        return str(data["notice"]) if "notice" in data.files else ""


def platform_requirements(platform: str) -> dict[str, str]:
    reqs = dict(WHEELS)
    reqs.update(PLATFORM_PINS.get(platform, {}))
    return reqs


def check_wheel_coverage(graph: ImportGraph) -> list[str]:
    """Third-party modules the shipped code imports that neither Blender nor a wheel provides."""
    provided = set(WHEELS) | BLENDER_BUNDLED | {"face_recognition_models"}
    out = []
    for top, users in sorted(graph.third_party_top.items()):
        if top not in provided:
            out.append(f"{top} (module level in {', '.join(sorted(users))})")
    return out


# ------------------------------------------------------------------------------------ manifest
def manifest_text(version: str, platform: str, wheels: list[str]) -> str:
    template = (ADDON_SRC / "blender_manifest.toml").read_text()
    lines = []
    for line in template.splitlines():
        if line.startswith("version ="):
            line = f'version = "{version}"'
        elif line.startswith("# platforms") or line.startswith("platforms ="):
            line = f'platforms = ["{platform}"]'
        elif line.startswith("# wheels") or line.startswith("wheels ="):
            line = "wheels = [\n" + "".join(f'  "./wheels/{w}",\n' for w in wheels) + "]"
        lines.append(line)
    return "\n".join(lines) + "\n"


def host_platform_name() -> str:
    system, machine = sys.platform, host_platform.machine().lower()
    if system.startswith("linux"):
        return "linux-x64"
    if system == "win32":
        return "windows-x64"
    return "macos-arm64" if machine in ("arm64", "aarch64") else "macos-x64"


def _addon_files() -> dict[str, Path]:
    files = {}
    for path in sorted(ADDON_SRC.rglob("*")):
        rel = path.relative_to(ADDON_SRC)
        if path.is_dir() or "__pycache__" in rel.parts or rel.parts[0] in ("_site", "wheels") \
                or path.suffix in (".pyc", ".blend1") or rel.name == "blender_manifest.toml":
            continue
        if rel.parts[0] == "data" and rel.as_posix() != "data/README.md":
            continue
        files[rel.as_posix()] = path
    return files


def check_pair(model_dir: Path, facemodel: Path) -> None:
    """The bundle must be valid and trained on this face-model asset (same content hash)."""
    from facerecon_core.inference.bundle import BundleError, facemodel_hash_of, read_manifest

    try:
        want, got = read_manifest(model_dir)["facemodel"]["content_hash"], facemodel_hash_of(facemodel)
    except BundleError as exc:
        raise BuildError(str(exc)) from None
    if got != want:
        raise BuildError(f"{model_dir} was trained on face model {want[:12]}…, but {facemodel} is {got[:12]}…; "
                         "rebuild the asset with `facerecon assets build` or pass the matching --facemodel")


def build(platform: str, out_dir: Path, model_dir: Path, facemodel: Path, cache: Path,
          log=print) -> Path:
    sys.path.insert(0, str(REPO))
    from facerecon_core import __version__ as version

    if platform not in PLATFORMS:
        raise BuildError(f"unknown platform {platform!r}; choose from {', '.join(PLATFORMS)}")
    if not (model_dir / "manifest.json").is_file():
        raise BuildError(f"no model bundle at {model_dir} (manifest.json missing); export one with "
                         "`facerecon export` or pass --model DIR")
    if not facemodel.is_file():
        raise BuildError(f"face-model asset {facemodel} missing; build it with `facerecon assets build`")
    check_pair(model_dir, facemodel)
    graph = import_graph()
    problems = graph.problems()
    if problems:
        raise BuildError("import graph check failed:\n  " + "\n  ".join(problems))
    missing = check_wheel_coverage(graph)
    if missing:
        raise BuildError("shipped modules import packages no wheel provides: " + "; ".join(missing))
    log(f"facerecon_core: {len(graph.shipped)} modules shipped, {len(graph.skipped)} left out; third-party "
        f"at module level: {', '.join(sorted(graph.third_party_top))}")
    cache.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheel_dir = Path(tmp)
        wheels = [build_core_wheel(graph, wheel_dir, version)]
        for requirement in platform_requirements(platform).values():
            wheels.append(download_wheel(requirement, platform, cache))
        wheels.append(face_models_wheel(cache))
        target = out_dir / f"{ADDON_ID}-{version}-{platform}.zip"
        partial = target.with_suffix(".zip.part")
        root = ADDON_ID
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
            for rel, path in _addon_files().items():
                archive.write(path, f"{root}/{rel}")
            archive.writestr(f"{root}/blender_manifest.toml",
                             manifest_text(version, platform, [w.name for w in wheels]))
            for wheel in wheels:
                archive.write(wheel, f"{root}/wheels/{wheel.name}", compress_type=zipfile.ZIP_STORED)
            for path in sorted(model_dir.iterdir()):
                if path.is_file() and path.name not in BUNDLE_FILES_SKIPPED:
                    archive.write(path, f"{root}/data/model/{path.name}")
            runtime, notice = runtime_facemodel(facemodel, wheel_dir / "facemodel.npz")
            archive.write(runtime, f"{root}/data/facemodel.npz", compress_type=zipfile.ZIP_STORED)
            head = facemodel.with_name("head.npz")
            if head.is_file():  # the head rig ("Whole head"), built beside the face-model asset
                archive.write(head, f"{root}/data/head.npz", compress_type=zipfile.ZIP_STORED)
                notice = notice or _head_notice(head)
            else:
                log(f"no head rig beside {facemodel} (build it with `facerecon assets head`): the add-on's "
                    f"\"Whole head\" will report it missing")
            if notice:  # the ARKit keys and the head come from the ICT Face Model: its licence travels with them
                archive.writestr(f"{root}/data/ICT-FaceKit-LICENSE.txt", notice)
            parts = sorted(((Path(i.filename).name, i.compress_size) for i in archive.infolist()),
                           key=lambda part: -part[1])
            archive.writestr(f"{root}/data/build.json", json.dumps({
                "version": version, "platform": platform, "wheels": [w.name for w in wheels],
                "modules": sorted(graph.shipped), "model": str(model_dir), "facemodel": str(facemodel)}, indent=1))
        size = partial.stat().st_size
        if size > MAX_ZIP_BYTES:
            partial.unlink()
            raise BuildError(f"the {platform} zip would be {size / 1e6:.1f} MB, over the {MAX_ZIP_BYTES / 1e6:.0f} MB "
                             "limit; largest parts: " + ", ".join(f"{n} {b / 1e6:.1f} MB" for n, b in parts[:4]))
        os.replace(partial, target)
    log(f"{target}: {size / 1e6:.1f} MB ({len(wheels)} wheels; limit {MAX_ZIP_BYTES / 1e6:.0f} MB)")
    for name, nbytes in parts[:8]:
        log(f"  {nbytes / 1e6:6.1f} MB  {name}")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--platform", default=host_platform_name(), choices=sorted(PLATFORMS))
    parser.add_argument("--out", type=Path, default=REPO / "dist")
    parser.add_argument("--model", type=Path, default=None, help="model bundle (default: facerecon_core/data/model)")
    parser.add_argument("--facemodel", type=Path, default=None,
                        help="face-model asset (default: facerecon_core/data/facemodel.npz)")
    parser.add_argument("--wheel-cache", type=Path, default=None, help="where downloaded wheels are kept "
                        "(default: OUT/wheel-cache)")
    parser.add_argument("--check", action="store_true", help="only run the import-graph check and list modules")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from facerecon_core import paths

    if args.check:
        graph = import_graph()
        for name in sorted(graph.shipped):
            print("ship", name)
        for name, why in sorted(graph.skipped.items()):
            print("skip", name, "-", why)
        print("third-party (module level):", ", ".join(sorted(graph.third_party_top)))
        print("third-party (lazy):", ", ".join(sorted(graph.third_party_lazy)))
        problems = graph.problems() + check_wheel_coverage(graph)
        for p in problems:
            print("PROBLEM", p)
        return 1 if problems else 0
    try:
        build(args.platform, args.out, args.model or paths.default_model_dir(),
              args.facemodel or paths.default_facemodel_path(), args.wheel_cache or args.out / "wheel-cache")
    except BuildError as exc:
        print(f"build_addon: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
