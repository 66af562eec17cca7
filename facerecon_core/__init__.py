"""facerecon: expression-aware single-photo 3D face reconstruction.

The package follows the data: ``facemodel`` (the BFM face model and its UV space),
``render`` (differentiable rasterizer and shading), ``io`` (atomic file output),
``cli`` (the ``facerecon`` command), ``pipeline`` (photo → 3D face: ``facerecon_core.reconstruct``).
"""

__version__ = "0.1.0"

__all__ = ["Reconstructor", "__version__", "reconstruct", "reconstruct_person"]


def __getattr__(name: str):
    """``reconstruct`` and ``Reconstructor`` load the pipeline on first use, so ``import facerecon_core``
    stays cheap (and torch-free)."""
    if name in ("reconstruct", "reconstruct_person", "Reconstructor"):
        from facerecon_core import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'facerecon_core' has no attribute {name!r}")
