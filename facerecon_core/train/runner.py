"""``facerecon train``: one stage of the paper's schedule, resumable, single process or torchrun.

Per step: a global batch (``train.batch_size``) in a fixed order drawn from (seed, epoch), split
over the processes. Logs go to ``RUN_DIR/log.csv`` and TensorBoard (``RUN_DIR/tb``); after every
epoch the held-out samples (every ``val_every``-th) are evaluated, a sample image is written to
``RUN_DIR/samples/`` and ``best.pt`` is kept by the validation total. ``last.pt`` is written every
``checkpoint_every`` steps and when a step or time limit stops the run, so ``--resume`` after a
kill continues with the same data order.
"""

from __future__ import annotations

import csv
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from facerecon_core.datasets.torch_data import Augment, FaceDataset
from facerecon_core.facemodel import FaceModel
from facerecon_core.io import save_image
from facerecon_core.model.config import Config, ConfigError
from facerecon_core.model.network import DualStreamNet
from facerecon_core.render.cpu import keep_torch_threads
from facerecon_core.train.checkpoint import (CheckpointError, checkpoint_state, load_checkpoint, model_state,
                                             save_checkpoint)
from facerecon_core.train.data import (EpochOrder, adapt_batch, collate, held_out_batch, repeat_per_folder,
                                      split_indices)
from facerecon_core.train.distributed import average_metrics, broadcast_module, init_distributed
from facerecon_core.train.from_bundle import load_start
from facerecon_core.train.stages import make_stage, missing_keys


@dataclass(frozen=True)
class TrainArgs:
    stage: str
    config: Path
    data: list[Path]
    out: Path
    repeat: list[int] | None = None  # per data folder: how often its training samples appear in an epoch
    resume: bool = False
    init: Path | None = None
    init_geometry: Path | None = None  # then the geometry stream (encoder, ASM decoders, PSN) from this checkpoint
    max_steps: int | None = None
    max_minutes: float | None = None
    decay_steps: int = 0  # the learning rate falls linearly to 0 over the last N steps before max_steps
    epochs: int = 1000
    seed: int = 0
    val_every: int = 20  # every n-th sample is held out for validation (0: none)
    val_batches: int = 4
    checkpoint_every: int = 200
    workers: int = 2
    device: str = "auto"
    freeze_bn: bool | None = None  # default: frozen for fusion only
    facemodel: Path | None = None
    progress: bool = True
    overrides: list[str] = field(default_factory=list)  # config KEY=VALUE on top of the file


@dataclass
class Progress:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_metric: float = float("inf")
    history: list[dict] = field(default_factory=list)


def train(args: TrainArgs) -> Progress:
    if args.decay_steps and not (args.max_steps and 0 < args.decay_steps <= args.max_steps):
        raise ConfigError(f"--decay-steps {args.decay_steps} needs --max-steps of at least as many steps")
    keep_torch_threads()  # numba's first launch would change torch's thread count mid-run
    dist = init_distributed(args.device)
    config = Config.load(args.config, args.overrides)
    facemodel = FaceModel.load(args.facemodel)
    torch.manual_seed(args.seed)
    net = DualStreamNet(config, facemodel).to(dist.device)
    if dist.world > 1 and dist.device.type == "cuda":
        net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)  # batch statistics over all processes
    stage = make_stage(args.stage, net, config, facemodel, dist.world, args.freeze_bn)
    progress = _restore(args, config, facemodel, net, stage, dist.main)
    broadcast_module(net, dist.world)
    if stage.discriminator is not None:
        stage.discriminator.to(dist.device)
        broadcast_module(stage.discriminator, dist.world)

    dataset = FaceDataset(args.data, augment=Augment(), seed=args.seed)
    missing = missing_keys(args.stage, dataset)
    if missing:
        raise CheckpointError(f"the {args.stage} stage needs {', '.join(sorted(missing))} in every sample: "
                              f"train it on {'a texture' if args.stage == 'texture' else 'an asm/profiled'} dataset")
    train_ids, val_ids = split_indices(len(dataset), args.val_every)
    if args.repeat is not None:
        try:
            train_ids = repeat_per_folder(train_ids, dataset.offsets, args.repeat)
        except ValueError as exc:
            raise ConfigError(f"--repeat: {exc}") from None
    order = EpochOrder(train_ids, config.train.batch_size, args.seed, dist.rank, dist.world)
    validation = FaceDataset(args.data, augment=None)

    args.out.mkdir(parents=True, exist_ok=True)
    log = _Log(args.out, dist.main)
    start = time.monotonic()
    total = args.max_steps or (order.batches_per_epoch * args.epochs if args.max_minutes is None else None)
    bar = tqdm(total=total, initial=progress.step if total is None else min(progress.step, total), desc=f"train {args.stage}",
               disable=not (args.progress and dist.main), unit="step")

    def save(name: str) -> None:
        if dist.main:
            save_checkpoint(args.out / name, _state(args, config, facemodel, net, stage, progress))

    def out_of_budget() -> bool:
        over_time = args.max_minutes is not None and time.monotonic() - start > 60 * args.max_minutes
        return over_time or (args.max_steps is not None and progress.step >= args.max_steps)

    def validate() -> None:
        if not (dist.main and len(val_ids)):
            return
        metrics = _validate(stage, validation, val_ids, config, args, dist.device)
        log.write("val", progress, metrics)
        save_image(args.out / "samples" / f"epoch_{progress.epoch:04d}_step_{progress.step}.png",
                   stage.visualise(held_out_batch(validation, val_ids[:4], config.model, dist.device)))
        if metrics["total"] < progress.best_metric:
            progress.best_metric = metrics["total"]
            save("best.pt")

    base_lr = getattr(config.train, f"lr_{args.stage}")
    stopped = False
    while not stopped and progress.epoch < args.epochs and not out_of_budget():
        dataset.set_epoch(progress.epoch)
        loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=list(order.batches(progress.epoch, progress.batch_in_epoch)),
            num_workers=args.workers, collate_fn=collate)
        for batch in loader:
            if out_of_budget():  # checked before a step, so a limit at an epoch's end still validates it
                stopped = True
                break
            batch = adapt_batch({k: v.to(dist.device) for k, v in batch.items()}, config.model)
            if args.decay_steps:
                set_learning_rate(stage, base_lr * decay_factor(progress.step, args.max_steps, args.decay_steps))
            metrics = average_metrics(stage.step(batch), dist.world)
            progress.step += 1
            progress.batch_in_epoch += 1
            log.write("train", progress, metrics)
            bar.update()
            bar.set_postfix({k: f"{v:.3g}" for k, v in metrics.items() if k == "total" or len(metrics) < 6})
            if progress.step % args.checkpoint_every == 0:
                save("last.pt")
        if stopped:
            break
        progress.epoch, progress.batch_in_epoch = progress.epoch + 1, 0
        validate()
        save("last.pt")
        dist.barrier()
    if stopped and progress.batch_in_epoch:  # a step or time limit inside an epoch: validate what was trained
        validate()
    save("last.pt")
    bar.close()
    log.close()
    return progress


def decay_factor(step: int, max_steps: int, decay_steps: int) -> float:
    """Learning-rate factor for the step after ``step`` steps: 1, then linear to 1/N on the last of N steps."""
    return min(1.0, (max_steps - step) / decay_steps)


def set_learning_rate(stage, lr: float) -> None:
    for optimizer in stage.optimizers().values():
        for group in optimizer.param_groups:
            group["lr"] = lr


def stage_settings(config: Config, stage: str) -> dict:
    """The parts of ``config`` that a ``stage`` run depends on (a resumed run must keep them)."""
    train = dataclasses.asdict(config.train)
    used = {"batch_size", "betas", f"lr_{stage}", f"{stage}_frozen"}
    return {"model": dataclasses.asdict(config.model),
            f"losses.{stage}": dataclasses.asdict(getattr(config.losses, stage)),
            **{f"train.{k}": v for k, v in train.items() if k in used}}


def _restore(args: TrainArgs, config: Config, facemodel: FaceModel, net, stage, main: bool) -> Progress:
    last = args.out / "last.pt"
    if args.resume and last.is_file():
        state = load_checkpoint(last)
        if state["stage"] != args.stage:
            raise CheckpointError(f"{last} is a {state['stage']} run, not {args.stage}")
        saved, now = (stage_settings(c, args.stage) for c in (Config.from_dict(state["config"]), config))
        if saved != now:  # defaults filled in; other stages' settings may differ
            keys = ", ".join(k for k in now if saved.get(k) != now[k])
            raise CheckpointError(f"{last} was trained with a different config than {args.config}"
                                  f"{''.join(' --set ' + o for o in args.overrides)} ({keys})")
        net.load_state_dict(model_state(state["model"]))
        if stage.discriminator is not None and state["discriminator"] is not None:
            stage.discriminator.load_state_dict(model_state(state["discriminator"]))
        for name, optimizer in stage.optimizers().items():
            optimizer.load_state_dict(state["optimizers"][name])
        return Progress(state["step"], state["epoch"], state["batch_in_epoch"], state["best_metric"])
    if args.resume and main:
        print(f"train: no checkpoint in {args.out} yet; starting from the beginning")
    if last.is_file():  # and not resuming (that returned above)
        raise CheckpointError(f"{args.out} already holds a run; use --resume to continue it or choose another --out")
    if args.init is not None:
        weights = model_state(_init_state(args.init, facemodel, stage.freeze_bn)["model"])
        try:
            net.load_state_dict(weights)
        except RuntimeError as exc:  # names or shapes differ
            detail = str(exc).splitlines()[1:2] or [str(exc)]
            raise CheckpointError(f"{args.init}: its weights do not fit this network (its config differs from "
                                  f"{args.config} with these --set options: {detail[0].strip()})") from None
    if args.init_geometry is not None:
        _load_geometry_stream(net, _init_state(args.init_geometry, facemodel, stage.freeze_bn), args.init_geometry)
    return Progress()


GEOMETRY_STREAM = ("encoder.", "decoder_id.", "decoder_exp.", "psn.")


def _init_state(path: Path, facemodel: FaceModel, batchnorm_frozen: bool) -> dict:
    """The checkpoint at ``path``, or one read back from the bundle folder at ``path`` (``facerecon export``)."""
    start = load_start(path, facemodel)
    if start.folded_batchnorm and not batchnorm_frozen:
        raise CheckpointError(f"{path}: an inference-only bundle has its BatchNorm folded into the convolutions "
                              "(no batch statistics): train this stage with --freeze-bn, or start it from a "
                              "checkpoint or a bundle exported with weights")
    return start.checkpoint


def _load_geometry_stream(net, state: dict, path: Path) -> None:
    """Replace the geometry stream's weights (encoder, ASM decoders, PSN) with ``state``'s; the texture stream
    stays (the texture stage never reads the geometry stream, so this equals a texture stage run from ``path``)."""
    part = {k: v for k, v in model_state(state["model"]).items() if k.startswith(GEOMETRY_STREAM)}
    try:
        result = net.load_state_dict(part, strict=False)
    except RuntimeError as exc:  # shapes differ
        raise CheckpointError(f"{path}: its geometry stream does not fit this network: {exc}") from None
    missing = [k for k in result.missing_keys if k.startswith(GEOMETRY_STREAM)]
    if missing or result.unexpected_keys:
        unexpected = ", ".join(result.unexpected_keys[:3]) or "nothing"
        raise CheckpointError(f"{path}: its geometry stream does not fit this network (missing "
                              f"{', '.join(missing[:3]) or 'nothing'}; unexpected {unexpected})")


def _state(args: TrainArgs, config: Config, facemodel: FaceModel, net, stage, progress: Progress) -> dict:
    return checkpoint_state(
        net, config, facemodel.content_hash, args.stage,
        discriminator=None if stage.discriminator is None else stage.discriminator.state_dict(),
        optimizers={k: o.state_dict() for k, o in stage.optimizers().items()},
        step=progress.step, epoch=progress.epoch, batch_in_epoch=progress.batch_in_epoch,
        best_metric=progress.best_metric, seed=args.seed)


def _validate(stage, dataset: FaceDataset, val_ids, config: Config, args: TrainArgs, device) -> dict[str, float]:
    size = config.train.batch_size
    sums: dict[str, float] = {}
    chunks = [val_ids[i:i + size] for i in range(0, len(val_ids), size)][:args.val_batches]
    for ids in chunks:
        for k, v in stage.evaluate(held_out_batch(dataset, ids, config.model, device)).items():
            sums[k] = sums.get(k, 0.0) + v / len(chunks)
    return sums


class _Log:
    """CSV (``log.csv``, appended on resume) and TensorBoard scalars, rank 0 only."""

    def __init__(self, out: Path, main: bool):
        self.main = main
        self.file = self.writer = self.tb = None
        if main:
            self.file = open(out / "log.csv", "a", newline="")
            self.writer = csv.writer(self.file)
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tb"))
            except ImportError:  # tensorboard is optional
                self.tb = None

    def write(self, split: str, progress: Progress, metrics: dict[str, float]) -> None:
        if not self.main:
            return
        for name, value in sorted(metrics.items()):
            self.writer.writerow([time.strftime("%Y-%m-%dT%H:%M:%S"), split, progress.step, progress.epoch, name,
                                  f"{value:.6g}"])
            if self.tb is not None:
                self.tb.add_scalar(f"{split}/{name}", value, progress.step)
        self.file.flush()

    def close(self) -> None:
        if self.main:
            self.file.close()
            if self.tb is not None:
                self.tb.close()
