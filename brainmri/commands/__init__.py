"""The command line (`train.py`): each module adds its commands to the parser (``register``), :func:`main` runs one."""

from __future__ import annotations

import argparse
import logging
import sys

from brainmri.commands import checks, evaluation, heldout, hosting, training

DESCRIPTION = "Train, evaluate, audit and publish brain-tumour MRI classifiers (python train.py COMMAND --help)."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    for commands in (training, evaluation, heldout, checks, hosting):
        commands.register(sub)
    return parser


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; with ``--config FILE`` (train, crossval) the recipe's args are the defaults."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config", None):
        from brainmri.training.recipes import config_defaults

        places = {k: getattr(args, k) for k in ("data", "masks", "lgg", "origins") if getattr(args, k, None)}
        subparser = parser._subparsers._group_actions[0].choices[args.command]
        subparser.set_defaults(**config_defaults(args.config, places))
        args = parser.parse_args(argv)
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(argv)
    except ValueError as err:  # a recipe file that cannot be read
        print(f"error: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    run = args.func
    del args.command, args.verbose, args.func
    from brainmri.inference.release import CheckpointError
    from brainmri.training.export import ExportError
    from brainmri.training.model import PretrainedUnavailable

    try:
        if getattr(args, "method", "") is None:
            from brainmri.inference.explain import SHOWN_METHODS

            args.method = list(SHOWN_METHODS)
        return run(args)
    except (PretrainedUnavailable, CheckpointError, ExportError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
