"""Reconstruct every photo of a folder into .blend files (and GLB), headless.

    blender -b -P blender_addon/scripts/batch_reconstruct.py -- --input DIR --output DIR [--refine N] [--glb]
    python blender_addon/scripts/batch_reconstruct.py --input DIR --output DIR ...   (with the bpy module)

One .blend (and NAME.glb with --glb) per face; a summary table at the end; the exit code is 1 when
any photo failed, 2 when there was no photo.
"""

import importlib.util
import sys
from pathlib import Path

ADDON_DIR = Path(__file__).resolve().parent.parent


def _addon_package():
    """The add-on as a package, whatever its folder is called (blender_addon in the repo, the
    extension id when installed); reuses it when Blender already loaded it."""
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve() == ADDON_DIR / "__init__.py":
            return module
    name = "facerecon_addon_batch"
    spec = importlib.util.spec_from_file_location(name, ADDON_DIR / "__init__.py",
                                                  submodule_search_locations=[str(ADDON_DIR)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _argv() -> list:
    argv = sys.argv
    return argv[argv.index("--") + 1:] if "--" in argv else argv[1:]


if __name__ == "__main__":
    package = _addon_package()
    batch = importlib.import_module(package.__name__ + ".services.batch")
    code = batch.main(_argv())
    sys.stdout.flush()
    sys.exit(code)
