"""plic.config_args: one builder of argparse options from config dataclasses."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from plic.config_args import add_config_args, config_from_args, option


@dataclass
class Cfg:
    batch_size: int = option(8, "images per step")
    lr: float = option(1e-4, "learning rate")
    mode: str = option("lin", "what to train", choices=("lin", "tune"), aliases=("--m",))
    amp: bool = option(False, "bfloat16 autocast")
    bin_widths: tuple = option((0.5, 2.0), "bin widths")
    codecs: list = option([], "codecs to use", default_text="all")
    out: str = option("runs/x", "output folder (default: runs/x)")


def parse(argv, **kw):
    p = argparse.ArgumentParser()
    add_config_args(p, Cfg, **kw)
    return p, config_from_args(Cfg, p.parse_args(argv))


def test_defaults_round_trip():
    assert parse([])[1] == Cfg()


def test_each_kind_of_field_parses_to_its_type():
    _, cfg = parse(["--batch-size", "4", "--lr", "0.5", "--m", "tune", "--amp",
                    "--bin-widths", "1", "3.5", "--codecs", "jpeg", "webp"])
    assert cfg == Cfg(batch_size=4, lr=0.5, mode="tune", amp=True, bin_widths=(1.0, 3.5),
                      codecs=["jpeg", "webp"])
    assert isinstance(cfg.batch_size, int) and isinstance(cfg.bin_widths, tuple)
    assert parse(["--no-amp"])[1].amp is False


def test_choices_are_enforced(capsys):
    with pytest.raises(SystemExit):
        parse(["--mode", "scratch"])
    assert "invalid choice" in capsys.readouterr().err


def test_help_shows_defaults_once_and_extra_help():
    p, _ = parse([], extra_help={"mode": "; registered: lin, tune"}, skip=("lr",))
    text = " ".join(p.format_help().split())
    assert "images per step (default: 8)" in text
    assert "(default: all)" in text  # default_text
    assert text.count("(default: runs/x)") == 1  # not repeated when the help says it
    assert "registered: lin, tune" in text
    assert "--lr" not in text


def test_other_options_in_the_namespace_are_ignored():
    ns = argparse.Namespace(**vars(parse([])[0].parse_args([])), verbose=True)
    assert config_from_args(Cfg, ns) == Cfg()
