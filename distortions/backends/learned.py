"""The project's own learned codecs through the codec core's coding API (``codec.api``).

The parameter is the quantisation bin width (delta): larger delta, fewer bits. The codec name is
given by the caller (``learned-<label>``, see ``distortions.checkpoints``) or else
``learned-<model>``; the version carries the checkpoint's sha256, so two checkpoints never share
a ``dist_id``.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from codec.bitstream import RATE_SEARCH_RANGE
from plic.fsio import sha256_file

from .base import Backend, BackendError, BackendUnavailable, ParamSpec


class LearnedBackend(Backend):
    """A trained checkpoint (``plic.checkpoint`` format) coded with ``codec.api``.

    The bin width is searched over codec.api's own rate-control range
    (``codec.bitstream.RATE_SEARCH_RANGE``, 2^-4 .. 2^8) to 1%.
    """

    ext = "plic"

    def __init__(self, checkpoint: str | Path, device: str = "cpu",
                 delta_range: tuple[float, float] = RATE_SEARCH_RANGE, name: str | None = None):
        self.checkpoint = Path(checkpoint)
        self.device = device
        self.param = ParamSpec("bin_width", delta_range[0], delta_range[1],
                               more_bits_when="lower", integer=False, rel_tol=0.01)
        self._model = None
        self._sha = None
        self._enc = None  # (image key, codec.api.Encoder) of the last image
        self.name = name or "learned"
        if name is None and self.checkpoint.is_file():
            self.name = f"learned-{self._model_name()}"

    def _model_name(self) -> str:
        try:
            import torch

            meta = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
            return str(meta.get("model", "model")).replace("/", "-")
        except Exception:  # noqa: BLE001 - a bad file is reported by check_available
            return "model"

    def _api(self):
        try:
            from codec import api
        except ImportError as e:
            raise BackendUnavailable(f"{self.name}: codec.api is not importable ({e}); the "
                                     f"learned backend needs the codec core's coding API") from e
        return api

    def check_available(self) -> None:
        if not self.checkpoint.is_file():
            raise BackendUnavailable(f"{self.name}: checkpoint {self.checkpoint} not found; "
                                     f"train one (python -m codec.train) or pass --checkpoint")
        self.model()

    def model(self):
        if self._model is None:
            api = self._api()
            try:
                self._model = api.load(str(self.checkpoint), device=self.device)
            except Exception as e:  # noqa: BLE001 - any load failure names the file
                raise BackendUnavailable(f"{self.name}: cannot load checkpoint "
                                         f"{self.checkpoint}: {e}") from e
        return self._model

    @property
    def version(self) -> str:
        if self._sha is None:
            self._sha = sha256_file(self.checkpoint)
        return f"ckpt-{self._sha[:16]}"

    def _encoder(self, image: np.ndarray):
        """codec.api's Encoder for ``image``: the analysis transform runs once per image, and
        each bin width the rate search tries re-codes only the latent stage."""
        key = (image.shape, hashlib.sha1(np.ascontiguousarray(image).data).hexdigest())
        if self._enc is None or self._enc[0] != key:
            self._enc = (key, self._api().Encoder(image, self.model()))
        return self._enc[1]

    def encode(self, image: np.ndarray, param: float) -> bytes:
        if not math.isfinite(param) or param <= 0:
            raise BackendError(f"{self.name}: bin width must be positive, got {param}")
        try:
            return self._encoder(image).code(float(param)).data
        except BackendError:
            raise
        except Exception as e:  # noqa: BLE001 - reported with the codec and parameter
            raise BackendError(f"{self.name}: encoding at bin_width={param} failed: {e}") from e

    def decode(self, data: bytes) -> np.ndarray:
        try:
            return self._api().decompress(data, self.model())
        except Exception as e:  # noqa: BLE001
            raise BackendError(f"{self.name}: decoding failed: {e}") from e


def from_options(options, name: str) -> LearnedBackend:
    """The registry's factory: ``learned`` is ``options.checkpoint``, ``learned-<label>`` the
    checkpoint ``options.learned`` pairs with that name."""
    if name == "learned":
        if not options.checkpoint:
            raise BackendUnavailable("learned: needs a checkpoint; pass --checkpoint PATH or "
                                     "put codec checkpoints in checkpoints/")
        return LearnedBackend(options.checkpoint)
    paths = dict(options.learned)
    if name not in paths:
        known = ", ".join(paths) or "none"
        raise BackendUnavailable(f"{name}: no checkpoint given for this codec (learned "
                                 f"codecs here: {known}); pass --checkpoint PATH")
    return LearnedBackend(paths[name], name=name)
