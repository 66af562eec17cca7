"""Training from an exported bundle: the network's weights read back from ``facerecon export``'s files.

A bundle exported with weights (``weights.safetensors``) gives them exactly. An inference-only bundle
(``--no-weights``, as the shipped model) holds them only in its ONNX graphs, where the exporter has folded
each BatchNorm into the convolution before it: W' = W·s and b' = (b − μ)·s + β with s = γ / √(σ² + ε). They
come back as that convolution with W' (and no bias) followed by a BatchNorm that adds b' (γ = 1, β = b',
μ = 0, σ² = 1 − ε): the same function with the statistics frozen, so stages that keep BatchNorm fixed
(fusion, ``--freeze-bn``) start from exactly the bundle's network, and its γ, β still train. The batch
statistics themselves are gone, so stages that update them need a checkpoint or a bundle with weights.

Convolutions and linear layers are matched to the graphs' Conv and Gemm nodes by the order in which the
traced network runs them (the node order; checked by shape), other parameters by their initializers' names
(``net.<parameter>``). The rebuilt network is then compared with
onnxruntime on the bundle's own graphs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facerecon_core.inference.bundle import GRAPHS, MANIFEST, BundleError, read_manifest
from facerecon_core.inference.export import VERIFY_ATOL, graph_specs, verify_graphs
from facerecon_core.inference.torch_runtime import build_from_state, inference_config
from facerecon_core.model import Config, DualStreamNet
from facerecon_core.train.checkpoint import CheckpointError, checkpoint_state, load_checkpoint

CONV_OPS = ("Conv", "ConvTranspose")


@dataclass(frozen=True)
class StartWeights:
    checkpoint: dict  # a checkpoint dict (checkpoint_state's keys): config, weights, stage and step
    folded_batchnorm: bool  # BatchNorm layers hold the folded form (batch statistics unknown)
    max_abs_diff: float  # a bundle's rebuilt network against onnxruntime on its graphs (0 for a checkpoint)


def is_bundle(path: str | Path) -> bool:
    return Path(path).is_dir() and (Path(path) / MANIFEST).is_file()


def load_start(path: str | Path, facemodel) -> StartWeights:
    """A checkpoint file or a bundle folder to start training (or validation) from; raises CheckpointError."""
    if is_bundle(path):
        try:
            return checkpoint_from_bundle(path, facemodel)
        except BundleError as exc:
            raise CheckpointError(str(exc)) from None
    state = load_checkpoint(path)
    if state["facemodel_hash"] != facemodel.content_hash:
        raise CheckpointError(f"{path} was trained with another face model; rebuild or retrain")
    return StartWeights(state, False, 0.0)


def checkpoint_from_bundle(folder: str | Path, facemodel) -> StartWeights:
    """The network of the bundle in ``folder`` as a checkpoint dict (raises :class:`BundleError`)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    trained_on = manifest["facemodel"]["content_hash"]
    if trained_on != facemodel.content_hash:
        raise BundleError(f"{folder}: made with face model {trained_on[:12]}…, not {facemodel.content_hash[:12]}…")
    config = Config.from_dict(manifest["config"])
    with_weights = manifest.get("weights") is not None
    if with_weights:
        from safetensors.torch import load_file

        net = build_from_state(config, load_file(str(folder / manifest["weights"]["file"])))
    else:
        net = DualStreamNet(inference_config(config), facemodel).eval()
    # the specs' modules wrap ``net``: they see the weights loaded below
    specs = graph_specs(net, config.model.input_size, facemodel)
    folded = False if with_weights else _load_from_graphs(net, folder, specs)
    diffs = verify_graphs(folder, specs, facemodel)
    worst = max(diffs.values(), default=0.0)
    if not worst <= VERIFY_ATOL:
        raise BundleError(f"{folder}: the network rebuilt from the bundle disagrees with its graphs by {worst:.2e} "
                          f"(> {VERIFY_ATOL:g}); per output: {diffs}")
    training = manifest.get("training", {})
    state = checkpoint_state(net, config, facemodel.content_hash, str(training.get("stage", "fusion")),
                             step=int(training.get("step", 0)))
    return StartWeights(state, folded, worst)


def _load_from_graphs(net: DualStreamNet, folder: Path, specs: dict[str, tuple]) -> bool:
    """Copy every parameter of ``net`` from the bundle's ONNX graphs (``specs``: :func:`graph_specs` of ``net``);
    True when BatchNorm was folded."""
    import onnx

    assigned: set[str] = set()
    own = dict(net.named_parameters())
    names = {id(p): n for n, p in own.items()}
    folded = False
    for name, (module, args, _, _) in specs.items():
        graph = onnx.load(str(folder / GRAPHS[name])).graph
        values = _initializers(graph)
        for key, value in values.items():
            if key.startswith("net.") and key[4:] in own:
                _copy(own[key[4:]], value, key)
                assigned.add(key[4:])
        layers, batchnorm_after = _layers_in_order(module, args)
        for kind, ops, layer_type in (("convolutions", CONV_OPS, nn.modules.conv._ConvNd),
                                      ("linear layers", ("Gemm",), nn.Linear)):
            nodes = [n for n in graph.node if n.op_type in ops]
            modules = [m for m in layers if isinstance(m, layer_type)]
            if len(nodes) != len(modules):
                raise BundleError(f"{folder / GRAPHS[name]}: {len(nodes)} {kind}, the network runs {len(modules)}; "
                                  "the bundle was made by another version of the network")
            for node, layer in zip(nodes, modules):
                weight = _value(values, node.input[1], node.name)
                if node.op_type == "Gemm" and not any(a.name == "transB" and a.i for a in node.attribute):
                    weight = weight.T
                bias = _value(values, node.input[2], node.name) if len(node.input) > 2 and node.input[2] else None
                folded |= _set_layer(layer, batchnorm_after.get(layer), weight, bias, node.name)
                assigned.update(names[id(p)] for p in layer.parameters())
                if layer in batchnorm_after:
                    assigned.update(names[id(p)] for p in batchnorm_after[layer].parameters())
    missing = sorted(set(names.values()) - assigned)
    if missing:
        raise BundleError(f"{folder}: its graphs hold no value for {', '.join(missing[:4])}"
                          f"{' …' if len(missing) > 4 else ''}")
    return folded


def _set_layer(layer: nn.Module, bn: nn.Module | None, weight: np.ndarray, bias: np.ndarray | None,
               where: str) -> bool:
    """Set a convolution or linear layer (and the BatchNorm folded into it) from a graph node; True if folded."""
    _copy(layer.weight, weight, where)
    if bn is None:
        if layer.bias is not None:
            _copy(layer.bias, np.zeros(tuple(layer.bias.shape), np.float32) if bias is None else bias, where)
        elif bias is not None and np.any(bias):
            raise BundleError(f"{where}: a bias for a layer without one")
        return False
    with torch.no_grad():
        if layer.bias is not None:
            layer.bias.zero_()
        bn.weight.fill_(1.0)
        _copy(bn.bias, np.zeros(tuple(bn.bias.shape), np.float32) if bias is None else bias, where)
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
    return True


def holds_folded_batchnorm(state_dict: dict) -> bool:
    """True when every BatchNorm of a state dict holds the folded form :func:`_set_layer` writes (running mean 0,
    running variance 1 − ε with BatchNorm's default ε): a bundle's network, or a run started from one with
    BatchNorm frozen."""
    means = [k for k in state_dict if k.endswith("running_mean")]
    folded_var = torch.tensor(1.0 - nn.BatchNorm2d(1).eps)
    return bool(means) and all(
        not state_dict[k].any() and torch.equal(state_dict[k.removesuffix("running_mean") + "running_var"],
                                                folded_var.expand_as(state_dict[k])) for k in means)


def _initializers(graph) -> dict[str, np.ndarray]:
    """Stored tensors as float32 arrays under every name the nodes read them by: float16 initializers through
    their Cast, and the Identity nodes with which the exporter shares one tensor between equal parameters."""
    from onnx import numpy_helper

    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type in ("Cast", "Identity") and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]]
    return {name: value.astype(np.float32) if value.dtype == np.float16 else value for name, value in values.items()}


def _value(values: dict[str, np.ndarray], name: str, node: str) -> np.ndarray:
    if name not in values:
        raise BundleError(f"{node}: its input {name!r} is not a stored tensor")
    return values[name]


def _copy(param: torch.Tensor, value: np.ndarray, where: str) -> None:
    if tuple(value.shape) != tuple(param.shape):
        raise BundleError(f"{where}: a {tuple(value.shape)} tensor for a {tuple(param.shape)} parameter; "
                          "the bundle was made by another version of the network")
    with torch.no_grad():
        param.copy_(torch.from_numpy(np.array(value, np.float32)))


def _layers_in_order(module: nn.Module, args: tuple) -> tuple[list[nn.Module], dict[nn.Module, nn.Module]]:
    """The convolutions and linear layers ``module(*args)`` runs, in order, and the BatchNorm run directly on
    each one's output."""
    layers: list[nn.Module] = []
    outputs: dict[int, nn.Module] = {}
    keep: list[torch.Tensor] = []  # keeps outputs alive so that their ids stay unique
    after: dict[nn.Module, nn.Module] = {}

    def on_layer(layer, _inputs, output):
        layers.append(layer)
        outputs[id(output)] = layer
        keep.append(output)

    def on_batchnorm(bn, inputs, _output):
        layer = outputs.get(id(inputs[0]))
        if layer is not None:
            after[layer] = bn

    hooks = [m.register_forward_hook(on_layer) for m in module.modules()
             if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]
    hooks += [m.register_forward_hook(on_batchnorm) for m in module.modules()
              if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    try:
        with torch.no_grad():
            module(*args)
    finally:
        for hook in hooks:
            hook.remove()
    return layers, after
