"""``facerecon train``: one training stage (geometry, texture, fusion)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from facerecon_core.train.stages import STAGES

    p = sub.add_parser("train", help="train one stage of the network (runs unchanged under torchrun)")
    p.add_argument("--stage", choices=STAGES, required=True)
    p.add_argument("--config", type=Path, required=True, help="training/configs/*.yaml")
    p.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                   help="change one config value (YAML), e.g. model.geometry.psn_split=true; repeatable")
    p.add_argument("--data", type=Path, nargs="+", required=True, help="dataset folders (facerecon data synth)")
    p.add_argument("--repeat", type=int, nargs="+", metavar="N", default=None,
                   help="how often each --data folder's training samples appear in an epoch, one count per folder "
                        "(default 1 each): oversamples a folder; listing it twice in --data would not (the "
                        "held-out samples are every n-th of the folders as listed, so a copy's would be trained on)")
    p.add_argument("--out", type=Path, required=True, help="run folder: checkpoints, logs, sample images")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    p.add_argument("--init", type=Path, default=None,
                   help="start from this checkpoint's weights (earlier stage), or a bundle folder's (facerecon "
                        "export; an inference-only bundle needs BatchNorm frozen, as in fusion)")
    p.add_argument("--init-geometry", type=Path, default=None,
                   help="then take the geometry stream (encoder, ASM decoders, PSN) from this checkpoint or "
                        "bundle: fusion on a texture stage's texture stream and a newer geometry run")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (in all)")
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this many minutes (this run)")
    p.add_argument("--decay-steps", type=int, default=0,
                   help="lower the learning rate linearly to 0 over the last N steps before --max-steps")
    p.add_argument("--epochs", type=int, default=1000, help="stop after this many epochs (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-every", type=int, default=20, help="hold out every n-th sample (default 20)")
    p.add_argument("--checkpoint-every", type=int, default=200, help="steps between last.pt writes")
    p.add_argument("--workers", type=int, default=2, help="data-loading processes (default 2)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--freeze-bn", action=argparse.BooleanOptionalAction, default=None,
                   help="keep BatchNorm statistics fixed (default: only in the fusion stage)")
    p.add_argument("--facemodel", type=Path, default=None, help="face-model asset (default: the built one)")
    p.set_defaults(run=_train)


def _train(args: argparse.Namespace) -> int:
    from facerecon_core.train.runner import TrainArgs, train

    progress = train(TrainArgs(
        stage=args.stage, config=args.config, data=args.data, repeat=args.repeat, out=args.out, resume=args.resume,
        init=args.init, init_geometry=args.init_geometry,
        max_steps=args.max_steps, max_minutes=args.max_minutes, decay_steps=args.decay_steps, epochs=args.epochs,
        seed=args.seed, val_every=args.val_every, checkpoint_every=args.checkpoint_every, workers=args.workers,
        device=args.device, freeze_bn=args.freeze_bn, facemodel=args.facemodel, overrides=args.overrides))
    print(f"{args.out}: stage {args.stage}, step {progress.step}, epoch {progress.epoch}, "
          f"best validation {progress.best_metric:.4g}")
    return 0
