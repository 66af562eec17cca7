"""Every benchmark of ``make bench`` runs on a fresh clone: each script in its quick mode, as make runs it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from facerecon_core import paths

BENCHMARKS = sorted((paths.REPO_ROOT / "benchmarks").glob("bench_*.py"))


def test_make_bench_runs_every_benchmark():
    makefile = (paths.REPO_ROOT / "Makefile").read_text()
    assert BENCHMARKS and all(f"benchmarks/{script.name}" in makefile for script in BENCHMARKS)


@pytest.mark.slow
@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.stem)
def test_benchmark_runs_in_quick_mode(script, facemodel_path, tmp_path):
    proc = subprocess.run([sys.executable, str(script), "--quick"], capture_output=True, text=True, timeout=900,
                          cwd=str(tmp_path), env={**os.environ, paths.FACEMODEL_ENV: str(facemodel_path)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "| ---" in proc.stdout or "|---" in proc.stdout  # its table
    assert proc.stdout.strip().splitlines()[-1].startswith("{")  # and its JSON line
