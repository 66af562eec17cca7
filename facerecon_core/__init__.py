"""facerecon: expression-aware single-photo 3D face reconstruction.

The package follows the data: ``facemodel`` (the BFM face model and its UV space),
``render`` (differentiable rasterizer and shading), ``io`` (atomic file output),
``cli`` (the ``facerecon`` command).
"""

__version__ = "0.1.0"
