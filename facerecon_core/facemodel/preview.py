"""A shaded picture of a face-model shape: the quickest visual check of an asset."""

from __future__ import annotations

import math

import numpy as np

from facerecon_core.facemodel.model import FaceModel

FACE_HEIGHT_MM = 180.0  # chin to forehead of the no-neck mesh, roughly


def frontal_light(ambient: float = 0.75, diffuse: float = 0.45, direction=(-0.4, 0.5, 1.0)) -> np.ndarray:
    """SH coefficients (3, 9) of white light: irradiance = ambient + diffuse · (n · direction).

    Uses the first-order terms of the normalised basis of ``render.sh_basis`` (whose linear
    functions carry the factor 2/√3).
    """
    d = np.asarray(direction, np.float64)
    d = d / np.linalg.norm(d)
    coeff = np.zeros(9)
    coeff[0] = ambient
    coeff[1:4] = diffuse * np.array([d[1], d[2], d[0]]) * math.sqrt(3.0) / 2.0  # basis order y, z, x
    return np.tile(coeff, (3, 1)).astype(np.float32)


def render_preview(
    model: FaceModel,
    vertices: np.ndarray | None = None,
    size: int = 512,
    yaw_deg: float = 20.0,
    background=(0.12, 0.12, 0.14),
) -> np.ndarray:
    """Render ``vertices`` (default: the mean face) with the mean albedo: (size, size, 3) float in [0, 1]."""
    import torch

    from facerecon_core.render import PerspectiveCamera, euler_to_matrix, render_mesh

    verts = torch.as_tensor(model.mean_shape if vertices is None else vertices, dtype=torch.float32)[None]
    rotation = euler_to_matrix(torch.tensor([[0.0, math.radians(yaw_deg), 0.0]]))
    distance = 600.0
    camera = PerspectiveCamera(focal=0.85 * size * distance / FACE_HEIGHT_MM, width=size, height=size,
                               near=100.0, far=2000.0)
    verts_cam = verts @ rotation.transpose(1, 2) + torch.tensor([0.0, 0.0, -distance])
    bg = torch.tensor(background, dtype=torch.float32).view(1, 3, 1, 1).expand(1, 3, size, size)
    with torch.no_grad():
        out = render_mesh(verts_cam, torch.as_tensor(model.triangles), camera,
                          vertex_colors=torch.as_tensor(model.albedo_mean)[None],
                          sh=torch.as_tensor(frontal_light())[None], background=bg, backend="cpu")
    return out.image[0].permute(1, 2, 0).clamp(0, 1).numpy()
