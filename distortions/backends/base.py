"""The one interface every codec backend implements.

A backend turns a uint8 RGB image and one rate parameter into the bytes of a real file, and those
bytes back into a uint8 RGB image. The parameter's range and direction are declared, so the rate
search (``distortions.ratesearch``) treats JPEG quality, HEVC QP and a learned codec's bin width
alike: it only needs to know which end of the range spends more bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class BackendError(RuntimeError):
    """A codec failed on one input; the message names the codec, the input and the fix."""


class BackendUnavailable(BackendError):
    """A codec cannot run on this machine at all (missing binary, library or checkpoint)."""


@dataclass(frozen=True)
class ParamSpec:
    """The rate parameter of a backend.

    ``lo``/``hi`` bound it; ``more_bits_when`` is ``"higher"`` when a larger value spends more
    bits (JPEG quality) and ``"lower"`` when a smaller one does (QP, bin width). ``integer``
    parameters are searched over integers, others in log space to ``rel_tol``.
    """

    name: str
    lo: float
    hi: float
    more_bits_when: str = "higher"
    integer: bool = True
    rel_tol: float = 0.002

    def __post_init__(self):
        if self.more_bits_when not in ("higher", "lower"):
            raise ValueError(f"more_bits_when must be 'higher' or 'lower', not "
                             f"{self.more_bits_when!r}")
        if not self.lo < self.hi:
            raise ValueError(f"empty parameter range [{self.lo}, {self.hi}]")
        if not self.integer and self.lo <= 0:
            raise ValueError("a continuous parameter is searched in log space: lo must be > 0")


class Backend:
    """Base class. Subclasses set ``name``, ``ext``, ``param`` and implement the methods."""

    name: str = ""
    ext: str = ""  # file extension of the bitstream, without the dot
    param: ParamSpec

    @property
    def version(self) -> str:
        """A string that changes whenever the same (image, param) could give different bytes."""
        raise NotImplementedError

    def check_available(self) -> None:
        """Raise :class:`BackendUnavailable` (with the fix) when this codec cannot run here."""

    def encode(self, image: np.ndarray, param: float) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes) -> np.ndarray:
        raise NotImplementedError

    def format_param(self, param: float) -> str:
        """The parameter as written to index.csv (and hashed into the dist_id)."""
        if self.param.integer:
            return str(int(round(param)))
        return f"{float(param):.6g}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
