"""The bundle's two inference graphs as torch modules, and the torch runtime of :class:`ModelBundle`.

:class:`GeometryGraph` and :class:`TextureGraph` are what ``facerecon export`` traces to ONNX, and
what ``ModelBundle.load(..., runtime="torch")`` runs, so both runtimes compute the same thing.
The torch runtime rebuilds the :class:`DualStreamNet` from the manifest's config and fills every
parameter and buffer from ``weights.safetensors`` (no face-model asset and no pretrained backbone
file needed; nothing is unpickled).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facerecon_core.model import Config, DualStreamNet


class GeometryGraph(nn.Module):
    """image [B, S, S, 3] RGB in [0, 1] → (A_id, A_exp [B, G, G, 3] mm, p_t [B, K], p_l [B, 3, 9], p_h [B, 6])."""

    def __init__(self, net: DualStreamNet) -> None:
        super().__init__()
        self.net = net
        self.train(net.training)

    def forward(self, image: torch.Tensor):
        out = self.net.geometry(image.permute(0, 3, 1, 2))
        p = out.params
        return out.A_id.permute(0, 2, 3, 1), out.A_exp.permute(0, 2, 3, 1), p.p_t, p.p_l, p.p_h


class TextureGraph(nn.Module):
    """(image [B, S, S, 3], landmarks_2d [B, 68, 2] crop px, p_t [B, K]) → (I_a, I_u [B, T, T, 3])."""

    def __init__(self, net: DualStreamNet) -> None:
        super().__init__()
        self.net = net
        self.train(net.training)

    def forward(self, image: torch.Tensor, landmarks_2d: torch.Tensor, p_t: torch.Tensor):
        i_u = self.net.albedo_map(p_t)
        i_a, _ = self.net.texture(i_u, image.permute(0, 3, 1, 2), landmarks_2d)
        return i_a.permute(0, 2, 3, 1), i_u.permute(0, 2, 3, 1)


def inference_config(config: Config | dict) -> Config:
    """The config with pretrained-backbone loading switched off (the weights come from the bundle)."""
    cfg = copy.deepcopy(config) if isinstance(config, Config) else Config.from_dict(config)
    cfg.model.encoder.pretrained = False
    cfg.model.encoder.weights = None
    return cfg


def full_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer, persistent or not (the fixed face-model maps are non-persistent)."""
    state = dict(net.state_dict())
    for name, buf in net.named_buffers():
        state.setdefault(name, buf)
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


class _BufferFaceModel:
    """Stands in for the FaceModel while building a DualStreamNet whose face-model buffers are then
    overwritten from a saved full state: gives only the right shapes."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        uv = tensors["vertex_uv"].numpy()
        n_vertices, n_albedo = uv.shape[0], tensors["albedo_basis_map"].shape[0]
        self.mean_shape = np.zeros((n_vertices, 3), np.float32)
        self.albedo_mean = self.mean_shape
        self.albedo_basis = np.zeros((n_albedo, n_vertices, 3), np.float32)
        self.n_albedo = n_albedo
        self.uv = uv
        self.triangles = tensors["triangles"].numpy()
        self.landmark_indices = tensors["landmark_index"].numpy()

    @staticmethod
    def to_uv_map(attr: np.ndarray, size: int) -> np.ndarray:
        return np.zeros(attr.shape[:-2] + (size, size, attr.shape[-1]), np.float32)


def build_from_state(config: Config | dict, tensors: dict[str, torch.Tensor]) -> DualStreamNet:
    """A DualStreamNet (eval mode) from a config and a :func:`full_state` dict; strict on key names and shapes."""
    net = DualStreamNet(inference_config(config), _BufferFaceModel(tensors))
    own = full_state(net)
    missing, unexpected = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise ValueError(f"weights do not fit the config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    wrong = [k for k in own if own[k].shape != tensors[k].shape]
    if wrong:
        raise ValueError(f"weights do not fit the config: shape of {wrong[:5]}")
    with torch.no_grad():
        for name, tensor in list(net.named_parameters()) + list(net.named_buffers()):
            tensor.copy_(tensors[name])
    return net.eval()


class TorchRunner:
    """The torch runtime of :class:`facerecon_core.inference.ModelBundle` (same interface as the ONNX one)."""

    name = "torch"

    def __init__(self, weights: Path, manifest: dict, device: str = "cpu", threads: int | None = None) -> None:
        from safetensors.torch import load_file

        from facerecon_core.inference.bundle import BundleError

        if device == "cuda" and not torch.cuda.is_available():
            import warnings

            warnings.warn("device='cuda': torch has no CUDA here; running on the CPU", RuntimeWarning, stacklevel=3)
            device = "cpu"
        if threads:
            torch.set_num_threads(int(threads))
        self.device = torch.device(device)
        try:
            tensors = load_file(str(weights))
            net = build_from_state(manifest["config"], tensors)
        except Exception as exc:
            raise BundleError(f"{weights}: cannot rebuild the network from the bundle's weights ({exc}); "
                              "re-export the bundle") from None
        net = net.to(self.device)
        self.net = net
        self.geometry_graph, self.texture_graph = GeometryGraph(net), TextureGraph(net)
        self.providers = [f"torch:{self.device}"]

    def _run(self, module: nn.Module, *arrays: np.ndarray) -> list[np.ndarray]:
        with torch.inference_mode():
            outs = module(*(torch.from_numpy(np.ascontiguousarray(a)).to(self.device) for a in arrays))
        return [o.float().cpu().numpy() for o in outs]

    def geometry(self, image: np.ndarray) -> list[np.ndarray]:
        return self._run(self.geometry_graph, image)

    def texture(self, image: np.ndarray, landmarks: np.ndarray, p_t: np.ndarray) -> list[np.ndarray]:
        return self._run(self.texture_graph, image, landmarks, p_t)
