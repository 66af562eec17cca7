"""Face textures in UV space: unwrapping a photo onto the mesh, filling what the photo does not see."""

from facerecon_core.texture.unwrap import UnwrappedTexture, fill_occluded, unwrap_photo

__all__ = ["UnwrappedTexture", "fill_occluded", "unwrap_photo"]
