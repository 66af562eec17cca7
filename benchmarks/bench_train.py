"""Training speed and memory per stage for a config (default ``training/configs/cpu.yaml``).

Each stage runs in its own process (so peak memory is the stage's own): a few warm-up steps, then
timed optimiser steps on a fixed batch of the config's batch size with the right shapes (random
images and labels; speed and memory do not depend on the values). Prints a Markdown table and, as
the last line, JSON. Target for cpu.yaml: ≤ 8 GB peak at batch 8.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "cpu.yaml"


def fake_batch(config, facemodel, seed: int = 0) -> dict:
    import numpy as np
    import torch

    g = torch.Generator().manual_seed(seed)
    b, m = config.train.batch_size, config.model
    s, a, t = m.input_size, m.geometry.asm_size, m.texture.tex_size
    base = torch.from_numpy(facemodel.to_uv_map(facemodel.mean_shape, a)).permute(2, 0, 1)
    lm = torch.from_numpy(np.asarray(facemodel.mean_shape[facemodel.landmark_indices][:, :2], np.float32))
    return {
        "image": torch.rand(b, 3, s, s, generator=g), "face_mask": torch.ones(b, 1, s, s),
        "asm_id": base.expand(b, -1, -1, -1) + torch.randn(b, 3, a, a, generator=g),
        "asm_exp": torch.randn(b, 3, a, a, generator=g),
        "angles": torch.randn(b, 3, generator=g) * 0.3, "translation": torch.tensor([[0.0, 0.0, -906.0]]).expand(b, 3),
        "sh": torch.randn(b, 3, 9, generator=g) * 0.1 + torch.eye(9)[0], "focal": torch.full((b,), 580.0),
        "albedo_coeff": torch.randn(b, facemodel.n_albedo, generator=g),
        "landmarks_2d": (lm / 200.0 * s + s / 2).expand(b, -1, -1).clone(),
        "uv_albedo": torch.rand(b, 3, t, t, generator=g), "uv_texture": torch.rand(b, 3, t, t, generator=g),
        "uv_visibility": torch.ones(b, 1, t, t),
    }


def run_stage(stage: str, config_path: Path, steps: int) -> dict:
    import torch

    from facerecon_core.facemodel import FaceModel
    from facerecon_core.model.config import Config
    from facerecon_core.model.network import DualStreamNet
    from facerecon_core.train.stages import make_stage

    config = Config.load(config_path)
    facemodel = FaceModel.load()
    torch.manual_seed(0)
    net = DualStreamNet(config, facemodel)
    trainer = make_stage(stage, net, config, facemodel)
    batch = fake_batch(config, facemodel)
    for _ in range(2):
        trainer.step(batch)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step(batch)
    seconds = (time.perf_counter() - start) / steps
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return {"stage": stage, "batch": config.train.batch_size, "s_per_step": round(seconds, 3),
            "images_per_s": round(config.train.batch_size / seconds, 2), "peak_gb": round(peak_gb, 2),
            "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one stage in this process
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run with the smallest sizes (tests/test_benchmarks.py)")
    args = parser.parse_args()
    if args.quick:
        args.steps = 1
    if args.one:
        print(json.dumps(run_stage(args.one, args.config, args.steps)))
        return
    results = []
    for stage in ("geometry", "texture", "fusion"):
        out = subprocess.run([sys.executable, __file__, "--config", str(args.config), "--steps", str(args.steps),
                              "--one", stage], capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"config {args.config.name}, batch {results[0]['batch']}, {results[0]['threads']} threads\n")
    print("| stage | s/step | images/s | peak memory (GB) |\n| --- | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['stage']} | {r['s_per_step']:.2f} | {r['images_per_s']:.1f} | {r['peak_gb']:.2f} |")
    print(json.dumps({"config": args.config.name, "stages": results}))


if __name__ == "__main__":
    main()
