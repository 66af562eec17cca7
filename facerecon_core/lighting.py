"""The light's convention: 9 spherical-harmonics irradiance terms per colour channel.

numpy only (torch tensors work too, imported lazily): the renderer, the network's light head, the
pipeline's light fit and the Blender add-on all use this one basis.
"""

from __future__ import annotations

import math

import numpy as np

# Lambertian-convolved real SH, normalised so that Y00 -> 1.
_K1 = 2.0 / math.sqrt(3.0)
_K2 = math.sqrt(15.0) / 4.0
_K20 = math.sqrt(5.0) / 8.0
_K22 = math.sqrt(15.0) / 8.0


def sh_basis(normals):
    """The 9 irradiance SH basis values (..., 9) of unit normals (..., 3): numpy arrays or torch tensors.

    Order: 1, y, z, x, xy, yz, 3z² − 1, xz, x² − y² (l = 0, 1, 2; m = −l..l), each scaled by its
    Lambertian convolution constant (π, 2π/3, π/4) and divided by the first one's, so that
    coefficients (1, 0, …, 0) give irradiance 1.
    """
    x, y, z = normals[..., 0], normals[..., 1], normals[..., 2]
    terms = [x * 0 + 1, _K1 * y, _K1 * z, _K1 * x, _K2 * x * y, _K2 * y * z, _K20 * (3.0 * z * z - 1.0),
             _K2 * x * z, _K22 * (x * x - y * y)]
    if isinstance(normals, np.ndarray):
        return np.stack(terms, axis=-1)
    import torch

    return torch.stack(terms, dim=-1)
