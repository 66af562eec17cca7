"""The ``facerecon`` command: one CLI with a subcommand per stage of the pipeline."""

from __future__ import annotations

import argparse
import sys

from facerecon_core import __version__
from facerecon_core.cli import (assets, average, calibrate, data, demo, export, figures, reconstruct, track, train,
                                validate)
from facerecon_core.cli import eval as eval_cmd

COMMANDS = (assets, data, train, validate, average, export, calibrate, reconstruct, track, eval_cmd, demo, figures)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facerecon", description=__doc__, fromfile_prefix_chars="@")
    parser.add_argument("--version", action="version", version=f"facerecon {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from facerecon_core.datasets.storage import DatasetError
    from facerecon_core.model.config import ConfigError
    from facerecon_core.train.checkpoint import CheckpointError
    from facerecon_core.detect import NoFaceError
    from facerecon_core.facemodel import FaceModelError, SourceError
    from facerecon_core.io.photo import PhotoError

    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (SourceError, FaceModelError, DatasetError, PhotoError, NoFaceError, ConfigError, CheckpointError,
            FileNotFoundError) as exc:
        print(f"facerecon {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"facerecon {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
