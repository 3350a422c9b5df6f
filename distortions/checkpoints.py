"""Which learned codecs a run uses: the ``--checkpoint`` options, else every ``checkpoints/*.pt``.

Each checkpoint becomes one codec named ``learned-<label>``; the label is the file's stem
(``checkpoints/mbt2018-small-bsds500.pt`` -> ``learned-mbt2018-small-bsds500``) or the ``NAME``
of ``--checkpoint NAME=PATH``. The name is what ``index.csv``'s ``codec`` column holds, so two
checkpoints are two codecs in the study; the codec version carries the checkpoint's hash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from plic.paths import REPO_ROOT

DEFAULT_CHECKPOINT_DIR = REPO_ROOT / "checkpoints"
LEARNED_PREFIX = "learned-"
_LABEL_OK = re.compile(r"[^A-Za-z0-9._-]+")


class CheckpointChoiceError(ValueError):
    """Checkpoints that cannot be told apart, or a bad ``NAME=PATH``."""


@dataclass
class LearnedChoice:
    """The learned codecs of a run: ``codecs`` maps codec name -> checkpoint path."""

    codecs: dict[str, str] = field(default_factory=dict)
    source: str = ""        # "--checkpoint" or the folder searched
    skipped: list[str] = field(default_factory=list)  # one line per file not used, with why

    def summary(self) -> str:
        """The one line a run prints about its learned codecs."""
        if not self.codecs:
            return (f"learned codecs: none (no codec checkpoint in {self.source}); skipped. "
                    f"Pass --checkpoint PATH to add one.")
        used = ", ".join(f"{name} ({path})" for name, path in self.codecs.items())
        return f"learned codecs from {self.source}: {used}"


def codec_name(label: str) -> str:
    """``learned-<label>`` with anything but letters, digits, '.', '_' and '-' made '-'."""
    clean = _LABEL_OK.sub("-", label).strip("-")
    if not clean:
        raise CheckpointChoiceError(f"checkpoint label {label!r} has no usable characters")
    return LEARNED_PREFIX + clean


def _parse(spec: str) -> tuple[str, Path]:
    """``PATH`` or ``NAME=PATH`` -> (codec name, path)."""
    name, sep, path = spec.partition("=")
    if sep and name and not Path(spec).exists():
        return codec_name(name), Path(path)
    p = Path(spec)
    return codec_name(p.stem), p


def _is_codec_checkpoint(path: Path) -> str | None:
    """None when ``path`` is a codec checkpoint, else why not."""
    from plic.checkpoint import CheckpointError, load_checkpoint

    try:
        load_checkpoint(path, kind="codec")
    except CheckpointError as e:
        if "a 'postdecode' checkpoint" in str(e):
            return "the learned stage of hevc-bpgcfg-pd (--codecs hevc-bpgcfg-pd)"
        return str(e)
    return None


def choose_learned(specs: list[str] | None, folder: str | Path | None = None) -> LearnedChoice:
    """The learned codecs: ``specs`` (``--checkpoint`` values) when given, else every codec
    checkpoint ``folder/*.pt`` holds (default: the repository's ``checkpoints/``). Files there
    that are not codec checkpoints (a metric, a training state) are skipped with a line."""
    choice = LearnedChoice()
    if specs:
        choice.source = "--checkpoint"
        pairs = [_parse(s) for s in specs]
    else:
        d = Path(folder) if folder is not None else DEFAULT_CHECKPOINT_DIR
        choice.source = str(d)
        pairs = []
        for p in sorted(d.glob("*.pt")) if d.is_dir() else []:
            why = _is_codec_checkpoint(p)
            if why is None:
                pairs.append((codec_name(p.stem), p))
            else:
                choice.skipped.append(f"{p}: not used ({why})")
    for name, path in pairs:
        if name in choice.codecs and Path(choice.codecs[name]) != path:
            raise CheckpointChoiceError(
                f"two checkpoints would both be codec {name!r} ({choice.codecs[name]} and "
                f"{path}); label them: --checkpoint NAME=PATH")
        choice.codecs[name] = str(path)
    return choice


def read_inputs(args) -> tuple[list, LearnedChoice]:
    """(image records, learned codecs) of a command's ``--data`` options (``plic.datasets``)
    and ``--checkpoint`` / ``--checkpoint-dir``; ``DataError`` or ``CheckpointChoiceError``."""
    from plic.datasets import records_from_args

    return records_from_args(args), choose_learned(args.checkpoint, args.checkpoint_dir)


def select_codecs(requested: tuple[str, ...] | None, learned: dict[str, str],
                  defaults: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
    """(codec names to run, errors). ``requested`` None: ``defaults`` plus every learned codec;
    ``learned`` in it stands for all learned codecs, ``learned-NAME`` for one."""
    if requested is None:
        return tuple(defaults) + tuple(learned), []
    out, errors = [], []
    for name in requested:
        if name == "learned":
            if not learned:
                errors.append("learned: no codec checkpoint found; pass --checkpoint PATH or "
                              "put one in checkpoints/")
            out += list(learned)
        elif name.startswith(LEARNED_PREFIX) and name not in learned:
            errors.append(f"{name}: no such learned codec (have: "
                          f"{', '.join(learned) or 'none'}); pass --checkpoint NAME=PATH")
        else:
            out.append(name)
    return tuple(dict.fromkeys(out)), errors
