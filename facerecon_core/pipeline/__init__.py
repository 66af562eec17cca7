"""Photo → 3D face: the reconstruction pipeline, one small module per stage of the data flow.

:mod:`.detect` (load the photo, find faces and 68 landmarks) → :mod:`.crop` (3DDFA_V2 crops, two
passes) → the network (:class:`facerecon_core.inference.ModelBundle`) → :mod:`.decode` (UV maps →
identity mesh, expression offsets, landmarks) → :mod:`.texture` (the texture stream's UV albedo map,
push-pull filled) → :mod:`.light` (the SH light fitted to the photo) → :mod:`.refine` (optional photometric
refinement, torch) → :mod:`.photo_texture` (the photo's own detail, de-lit, blended with the map) and
:mod:`.arkit` (the expression as ARKit key weights). :mod:`.reconstructor` ties them together in
:class:`Reconstructor` and :func:`reconstruct`; :mod:`.same_person` makes one head of several photos of one
person (:func:`reconstruct_person`). Torch-free unless the torch runtime or refinement is asked for.
"""

from facerecon_core.pipeline.detect import UnsupportedFormatError
from facerecon_core.pipeline.reconstructor import (ModelMissingError, ReconstructionCancelled, Reconstructor,
                                                   RunDetails, default_model_dir, reconstruct, reconstruct_person)
from facerecon_core.pipeline.same_person import PersonReconstruction

__all__ = ["ModelMissingError", "PersonReconstruction", "ReconstructionCancelled", "Reconstructor", "RunDetails",
           "UnsupportedFormatError", "default_model_dir", "reconstruct", "reconstruct_person"]
