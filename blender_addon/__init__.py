"""Face from Photo (facerecon): reconstruct a 3D head from one photo inside Blender.

Blender 4.2 LTS – 5.0. Installed as an extension (``blender_manifest.toml``, the wheels it lists
are installed by Blender) or as a legacy add-on (``bl_info``; the bundled wheels are unpacked into
the add-on folder on first use). ``register()`` imports ``bpy`` and the UI only: the inference part
of ``facerecon_core`` is imported when an operator runs.

Layout (after mpfb2): ``services/`` the logic (paths, runtime, reconstruction job, scene building,
batch), ``ui/`` panels, operators, menus and preferences, ``data/`` the model bundle and the
face-model asset (installed by ``build_addon.py``), ``scripts/`` the headless batch script.
"""

bl_info = {
    "name": "Face from Photo (facerecon)",
    "author": "facerecon developers",
    "version": (0, 1, 0),
    "blender": (4, 2, 0),
    "location": "3D Viewport > Sidebar > Face; File > Import > Face from Photo / Face from Video",
    "description": "Reconstruct an animatable 3D head (BFM topology, albedo texture, expression shape keys) "
                   "from one photo",
    "doc_url": "",
    "category": "Import-Export",
}


def register() -> None:
    from . import ui

    ui.register()


def unregister() -> None:
    from . import ui

    ui.unregister()
