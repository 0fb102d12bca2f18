"""TrainConfig: its defaults are the command line's, its options reach the run."""

from brainmri.commands.training import add_train_parser
from brainmri.training.config import TrainConfig
from helpers import parsed_train_options, tiny_trainer


def test_command_line_defaults_are_the_train_config_defaults():
    """Defaults live once: every training option's default is TrainConfig's."""
    import argparse
    from dataclasses import fields

    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers(dest="command"))
    args = vars(parser.parse_args(["train", "--data", "d", "--out", "o"]))
    for f in fields(TrainConfig):
        if f.name in args and f.name not in ("data", "out", "resume"):
            assert args[f.name] == f.default, f.name


def test_gamma_range_option_reaches_the_augmentation(dataset, cache_dir, tmp_path):
    assert tiny_trainer(dataset, tmp_path / "a", cache_dir).aug.gamma == (0.6, 1.6)  # the strong recipe's own
    assert tiny_trainer(dataset, tmp_path / "b", cache_dir, gamma=(0.45, 1.8)).aug.gamma == (0.45, 1.8)
    assert parsed_train_options("--gamma", "0.45", "1.8")["gamma"] == [0.45, 1.8]
