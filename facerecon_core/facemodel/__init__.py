"""The BFM face model on the no-neck topology, and its UV space (where the ASMs live)."""

from facerecon_core.facemodel.model import FaceModel, FaceModelError
from facerecon_core.facemodel.sources import SourceError
from facerecon_core.facemodel.uvmap import DEFAULT_UV_SIZE, UVRaster, sample_vertices

__all__ = ["FaceModel", "FaceModelError", "SourceError", "UVRaster", "sample_vertices", "DEFAULT_UV_SIZE"]
