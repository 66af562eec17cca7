"""``facerecon train``: a stage learns, resuming is exact, torchrun matches a single process."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from facerecon_core.cli import main
from facerecon_core.train.checkpoint import load_checkpoint
from facerecon_core.train.data import EpochOrder, repeat_per_folder, split_indices

CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "cpu.yaml"


def _train(out: Path, data: Path, facemodel: Path, *extra: str) -> int:
    return main(["train", "--stage", "geometry", "--config", str(CONFIG), "--data", str(data), "--out", str(out),
                 "--facemodel", str(facemodel), "--workers", "0", "--val-every", "10", *extra])


def _losses(run: Path, split: str, name: str = "total") -> list[float]:
    with open(run / "log.csv") as fh:
        return [float(r[5]) for r in csv.reader(fh) if r[1] == split and r[4] == name]


def test_epoch_order_is_deterministic_and_sharded():
    train_ids, val_ids = split_indices(40, 10)
    assert list(val_ids) == [0, 10, 20, 30] and len(train_ids) == 36
    single = EpochOrder(train_ids, 8, seed=3)
    ranks = [EpochOrder(train_ids, 8, seed=3, rank=r, world=2) for r in range(2)]
    for b, batch in enumerate(single.batches(epoch=1)):
        parts = [list(r.batches(epoch=1))[b] for r in ranks]
        assert parts[0] + parts[1] == batch
    assert list(single.batches(1, start=2)) == list(single.batches(1))[2:]
    assert list(single.batches(1)) != list(single.batches(2))
    with pytest.raises(ValueError, match="does not split"):
        EpochOrder(train_ids, 8, seed=0, world=3)


def test_repeat_oversamples_a_folder_and_keeps_the_held_out_split():
    train_ids, val_ids = split_indices(30, 10)  # folders of 20 and 10 samples
    ids = repeat_per_folder(train_ids, np.array([0, 20, 30]), [1, 3])
    assert sorted(set(ids)) == list(train_ids) and not set(ids) & set(val_ids)
    assert all((ids == i).sum() == (1 if i < 20 else 3) for i in train_ids)
    with pytest.raises(ValueError, match="1 repeat counts for 2 dataset folders"):
        repeat_per_folder(train_ids, np.array([0, 20, 30]), [2])
    with pytest.raises(ValueError, match="at least 1"):
        repeat_per_folder(train_ids, np.array([0, 20, 30]), [1, 0])


def test_repeat_lengthens_the_epoch(asm_dataset: Path, facemodel_path: Path, tmp_path: Path, capsys):
    run = tmp_path / "run"
    assert _train(run, asm_dataset, facemodel_path, "--max-steps", "5", "--repeat", "2") == 0
    assert len(_losses(run, "val")) == 1  # 72 training samples: 9 batches an epoch, so only the stop validates
    assert _train(tmp_path / "bad", asm_dataset, facemodel_path, "--max-steps", "5", "--repeat", "1", "2") != 0
    assert "--repeat: 2 repeat counts for 1 dataset folders" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_resume_compares_only_what_the_stage_uses():
    from facerecon_core.model import Config
    from facerecon_core.train.runner import stage_settings

    base = Config.load(CONFIG)
    fusion_changed = Config.load(CONFIG)
    fusion_changed.losses.fusion.pix, fusion_changed.train.fusion_frozen = 1.0, []
    assert stage_settings(base, "geometry") == stage_settings(fusion_changed, "geometry")
    assert stage_settings(base, "texture") == stage_settings(fusion_changed, "texture")
    assert stage_settings(base, "fusion") != stage_settings(fusion_changed, "fusion")
    wider = Config.load(CONFIG)
    wider.model.encoder.latent_dim = 256
    assert stage_settings(base, "geometry") != stage_settings(wider, "geometry")


def test_learning_rate_decays_over_the_last_steps(tmp_path: Path, capsys):
    from facerecon_core.train.runner import decay_factor

    assert [decay_factor(s, 10, 4) for s in range(10)] == [1.0] * 7 + [0.75, 0.5, 0.25]
    assert _train(tmp_path / "run", tmp_path, tmp_path / "facemodel.npz", "--decay-steps", "5") != 0
    assert "--decay-steps 5 needs --max-steps" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_geometry_stage_learns_and_writes_its_run(asm_dataset: Path, facemodel_path: Path, tmp_path: Path):
    run = tmp_path / "run"
    assert _train(run, asm_dataset, facemodel_path, "--max-steps", "12", "--decay-steps", "4") == 0
    losses = _losses(run, "train")
    assert len(losses) == 12 and sum(losses[-3:]) < 0.7 * sum(losses[:3])
    assert {p.name for p in run.iterdir()} >= {"last.pt", "best.pt", "log.csv", "samples", "tb"}
    assert len(list((run / "samples").glob("epoch_*.png"))) == 3  # 36 training samples: 4 batches an epoch
    state = load_checkpoint(run / "last.pt")
    assert state["step"] == 12 and state["stage"] == "geometry"
    assert state["optimizers"]["geometry"]["param_groups"][0]["lr"] == pytest.approx(2e-4 / 4)  # the last step's
    vertex_mm = _losses(run, "val", "vertex_mm")  # validation each epoch, in eval mode
    assert len(vertex_mm) == 3 and all(0 < v < 100 for v in vertex_mm)
    assert _train(run, asm_dataset, facemodel_path, "--max-steps", "13") == 2  # exists: --resume needed


def test_resume_after_a_stop_gives_the_same_weights(asm_dataset: Path, facemodel_path: Path, tmp_path: Path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert _train(straight, asm_dataset, facemodel_path, "--max-steps", "6") == 0
    assert _train(resumed, asm_dataset, facemodel_path, "--max-steps", "3") == 0
    assert _train(resumed, asm_dataset, facemodel_path, "--max-steps", "6", "--resume") == 0
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(resumed / "last.pt")
    assert a["step"] == b["step"] == 6
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    assert _losses(straight, "train") == pytest.approx(_losses(resumed, "train"), rel=1e-4)
    # a limit inside an epoch still validates (and so may write best.pt): after epoch 1 and at step 6
    assert len(_losses(straight, "val")) == 2 and load_checkpoint(straight / "best.pt")["step"] in (4, 6)


def test_init_geometry_takes_the_geometry_stream_from_a_second_checkpoint(asm_dataset: Path, facemodel_path: Path,
                                                                          tmp_path: Path, capsys):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert _train(a, asm_dataset, facemodel_path, "--max-steps", "1") == 0
    assert _train(b, asm_dataset, facemodel_path, "--max-steps", "1", "--seed", "1") == 0
    assert _train(c, asm_dataset, facemodel_path, "--max-steps", "0", "--init", str(a / "last.pt"),
                  "--init-geometry", str(b / "last.pt")) == 0
    sa, sb, sc = (load_checkpoint(run / "last.pt")["model"] for run in (a, b, c))
    for key, value in sc.items():
        source = sb if key.split(".")[0] in ("encoder", "decoder_id", "decoder_exp", "psn") else sa
        assert torch.equal(value, source[key]), key
    assert any(not torch.equal(sa[k], sb[k]) for k in sa if k.startswith("texture_net."))  # seeds differ
    assert _train(tmp_path / "d", asm_dataset, facemodel_path, "--max-steps", "0", "--init-geometry",
                  str(b / "last.pt"), "--set", "model.geometry.psn_hidden=64") == 2
    assert "its geometry stream does not fit this network" in capsys.readouterr().err
    assert not (tmp_path / "d" / "last.pt").exists()


@pytest.mark.slow
def test_torchrun_two_processes_match_one(asm_dataset: Path, facemodel_path: Path, tmp_path: Path):
    common = ["--stage", "geometry", "--config", str(CONFIG), "--data", str(asm_dataset), "--facemodel",
              str(facemodel_path), "--workers", "0", "--val-every", "10", "--max-steps", "2", "--freeze-bn"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, "-m", "facerecon_core", "train", "--out", str(tmp_path / "one"), *common],
                            env=env, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-2000:]
    double = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             "-m", "facerecon_core", "train", "--out", str(tmp_path / "two"), *common],
                            env=env, capture_output=True, text=True, timeout=600)
    assert double.returncode == 0, double.stderr[-3000:]
    init = subprocess.run([sys.executable, "-m", "facerecon_core", "train", "--out", str(tmp_path / "init"),
                           *common[:-3], "--max-steps", "0"], env=env, capture_output=True, text=True, timeout=600)
    assert init.returncode == 0, init.stderr[-2000:]
    start = load_checkpoint(tmp_path / "init" / "last.pt")["model"]
    a, b = load_checkpoint(tmp_path / "one" / "last.pt"), load_checkpoint(tmp_path / "two" / "last.pt")
    assert a["step"] == b["step"] == 2
    # Adam's first steps are ±lr for every weight whatever the gradient's size, so compare whole updates
    delta_one = torch.cat([(a["model"][k] - v).flatten() for k, v in start.items() if v.is_floating_point()])
    delta_two = torch.cat([(b["model"][k] - v).flatten() for k, v in start.items() if v.is_floating_point()])
    assert float((delta_two - delta_one).norm() / delta_one.norm()) < 0.05
    assert _losses(tmp_path / "two", "train")[:1] == pytest.approx(_losses(tmp_path / "one", "train")[:1], rel=1e-4)


def test_torch_thread_count_survives_the_numba_kernels():
    """numba's OpenMP layer would set torch's thread count to the core count on its first launch."""
    code = ("import numpy as np, torch\nfrom facerecon_core.render.cpu import keep_torch_threads\n"
            "from facerecon_core.render.kernels import rasterize_numpy\nkeep_torch_threads()\n"
            "rasterize_numpy(np.array([[[-1, -1, 0, 1], [1, -1, 0, 1], [0, 1, 0, 1]]], np.float32), "
            "np.array([[0, 1, 2]], np.int32), (8, 8))\nprint(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "OMP_NUM_THREADS": "1"},
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1"]


@pytest.mark.slow
def test_resume_after_kill_9(asm_dataset: Path, facemodel_path: Path, tmp_path: Path):
    """A run killed with SIGKILL resumes from its last checkpoint and ends where an uninterrupted run does."""
    import signal
    import time

    # every run in a subprocess with one thread: the same float reduction order in all three
    args = ["--stage", "geometry", "--config", str(CONFIG), "--data", str(asm_dataset), "--facemodel",
            str(facemodel_path), "--workers", "0", "--val-every", "10", "--checkpoint-every", "2", "--max-steps", "8"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = tmp_path / "stderr.txt"

    def run(out: Path, *extra: str) -> subprocess.Popen:
        with open(log, "w") as fh:
            return subprocess.Popen([sys.executable, "-m", "facerecon_core", "train", "--out", str(out), *args,
                                     *extra], env=env, stdout=subprocess.DEVNULL, stderr=fh)

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    proc = run(straight)
    assert proc.wait(timeout=600) == 0, log.read_text()[-2000:]
    proc = run(killed)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (killed / "last.pt").exists():
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (killed / "last.pt").exists() and not list(killed.glob(".*.tmp"))
    assert load_checkpoint(killed / "last.pt")["step"] < 8
    proc = run(killed, "--resume")
    assert proc.wait(timeout=600) == 0, log.read_text()[-2000:]
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(killed / "last.pt")
    assert a["step"] == b["step"] == 8
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_validate_reproduces_the_runs_held_out_losses(asm_dataset: Path, facemodel_path: Path, tmp_path: Path,
                                                       capsys):
    from facerecon_core.train.validate import validate

    run = tmp_path / "run"
    assert _train(run, asm_dataset, facemodel_path, "--max-steps", "4") == 0  # one epoch, then validation
    [row] = validate([run / "last.pt"], [asm_dataset], "geometry", every=10, facemodel=facemodel_path)
    assert row.samples == 4  # samples 0, 10, 20, 30: the run's own held-out split (--val-every 10)
    assert row.losses.keys() >= {"total", "vertex_mm"}
    for name, value in row.losses.items():
        assert value == pytest.approx(_losses(run, "val", name)[-1], rel=1e-5), name
    [below] = validate([run / "last.pt"], [asm_dataset], "geometry", every=10, below=15, facemodel=facemodel_path)
    assert below.samples == 2

    capsys.readouterr()
    args = ["validate", "--stage", "geometry", "--checkpoint", str(run / "last.pt"), str(run / "best.pt"),
            "--data", str(asm_dataset), "--every", "10", "--facemodel", str(facemodel_path)]
    assert main(args) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 4 and table[0].startswith("| checkpoint | data | samples |")
    assert main([*args[:2], "texture", *args[3:]]) == 2  # asm samples have no UV textures
    assert "the texture losses need them" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args[:-4], "--every", "0"])


@pytest.mark.slow
def test_training_on_a_fresh_dataset_with_the_default_workers(facemodel_path: Path, tmp_path: Path):
    """The commands as a user types them: a one-shard dataset, then a few steps with the default DataLoader workers
    (2, forked), several times over; reading the shards must never fail (Bad CRC-32 / Bad magic number)."""
    env = {**os.environ, "FACERECON_FACEMODEL": str(facemodel_path)}
    facerecon = [sys.executable, "-m", "facerecon_core"]
    data = tmp_path / "asm"
    synth = subprocess.run([*facerecon, "data", "synth", "--kind", "asm", "--count", "32", "--seed", "9137",
                            "--out", str(data)], env=env, capture_output=True, text=True, timeout=600)
    assert synth.returncode == 0, synth.stderr[-2000:]
    for attempt in range(3):
        run = tmp_path / f"run{attempt}"
        proc = subprocess.run([*facerecon, "train", "--stage", "geometry", "--config", str(CONFIG), "--data", str(data),
                               "--out", str(run), "--max-steps", "3"], env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert len(_losses(run, "train")) == 3
