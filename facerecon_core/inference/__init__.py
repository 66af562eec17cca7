"""Inference from an exported model bundle (``facerecon export``), without torch.

:class:`ModelBundle` loads a bundle folder and runs the network with onnxruntime (or, with
``runtime="torch"``, with the torch model rebuilt from the bundle's weights). Everything imported
here is numpy + onnxruntime only; the exporter (:mod:`facerecon_core.inference.export`) and the torch
runtime (:mod:`facerecon_core.inference.torch_runtime`) need torch and are imported on demand.
"""

from facerecon_core.inference.bundle import (BUNDLE_FORMAT, BundleError, ModelBundle, NetworkOutput,
                                             decode_pose, encode_pose)

__all__ = ["BUNDLE_FORMAT", "BundleError", "ModelBundle", "NetworkOutput", "decode_pose", "encode_pose"]
