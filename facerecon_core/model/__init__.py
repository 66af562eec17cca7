"""The dual-stream network of Chai et al. (TMM 2021) and its losses (torch).

See ``docs/paper-notes.md`` for how each part of the paper is read.
"""

from facerecon_core.model.config import Config, ConfigError, ModelConfig
from facerecon_core.model.geometry import decode_pose, encode_pose
from facerecon_core.model.network import DualStreamNet, ExportWrapper, Output, Params

__all__ = ["Config", "ConfigError", "ModelConfig", "DualStreamNet", "ExportWrapper", "Output", "Params",
           "encode_pose", "decode_pose"]
