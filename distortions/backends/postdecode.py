"""``hevc-bpgcfg-pd``: ``hevc-bpgcfg``'s HEVC bits, decoded by ffmpeg and the learned stage.

The stream is ``codec.postdecode``'s container (magic, version, the stage's weights hash, QP,
size) around the very HEVC bytes ``hevc-bpgcfg`` writes at that QP; bpp counts the whole file.
The parameter is the QP, searched like ``hevc-bpgcfg``'s, so both codecs meet the same targets
(the container's 19-21 bytes can move the search by one QP on an image where HEVC lands within
them of the target). The checkpoint is ``BackendOptions.postdecode`` (default
``checkpoints/hevc-bpgcfg-pd.pt``); the codec version carries its hash. HEVC streams are kept in
``BackendOptions.hevc_cache`` (default ``runs/postdecode/hevc-cache``;
``codec.hevc.cached_encode``): evaluating a new checkpoint re-codes nothing, and a run that
gives ``hevc-bpgcfg`` the same cache (``python -m distortions --hevc-cache DIR``) codes each
(image, QP) once for both codecs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from codec import hevc as _hevc
from plic.fsio import sha256_file
from plic.paths import REPO_ROOT, runs_dir

from .base import Backend, BackendError, BackendUnavailable, ParamSpec
from .hevc import backend_errors

NAME = "hevc-bpgcfg-pd"
DEFAULT_CHECKPOINT = REPO_ROOT / "checkpoints" / f"{NAME}.pt"


def default_cache() -> Path:
    return runs_dir() / "postdecode" / "hevc-cache"


class PostDecodedHevcBackend(Backend):
    """HEVC intra (BPG's settings) + the learned post-decoder. Parameter: QP 0..51."""

    name = NAME
    ext = "hpd"
    param = ParamSpec("qp", 0, 51, more_bits_when="lower", integer=True)

    def __init__(self, checkpoint: str | Path | None = None, ffmpeg: str = "ffmpeg",
                 preset: str = "slow", cache_dir: str | Path | None = None):
        self.checkpoint = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
        self.ffmpeg, self.preset = ffmpeg, _hevc.check_preset(preset)
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache()
        self._model = None
        self._sha = None

    def model(self):
        if self._model is None:
            if not self.checkpoint.is_file():
                raise BackendUnavailable(
                    f"{self.name}: post-decoder checkpoint {self.checkpoint} not found; train "
                    f"one (python -m codec.train.postdecode) or pass --postdecode-checkpoint")
            from codec import postdecode

            try:
                self._model = postdecode.load(self.checkpoint)
            except Exception as e:  # noqa: BLE001 - any load failure names the file
                raise BackendUnavailable(f"{self.name}: cannot load {self.checkpoint}: "
                                         f"{e}") from e
        return self._model

    def check_available(self) -> None:
        with backend_errors():
            _hevc.ffmpeg_versions(_hevc.find_ffmpeg(self.ffmpeg, self.name))
        self.model()

    @property
    def version(self) -> str:
        if self._sha is None:
            self.model()
            self._sha = sha256_file(self.checkpoint)
        with backend_errors():
            hv = _hevc.version(_hevc.find_ffmpeg(self.ffmpeg, self.name), self.preset)
        return f"{hv}/pd-ckpt-{self._sha[:16]}"

    def encode(self, image: np.ndarray, param: float) -> bytes:
        from codec import postdecode

        qp = int(round(param))
        with backend_errors():
            data = _hevc.cached_encode(image, qp, self.cache_dir, self.ffmpeg, self.preset,
                                       self.name)
        h, w = image.shape[:2]
        return postdecode.api.wrap(data, qp, h, w, self.model())

    def decode(self, data: bytes) -> np.ndarray:
        from codec import postdecode

        try:
            with backend_errors():
                return postdecode.decompress(data, self.model(), ffmpeg=self.ffmpeg)
        except BackendError:
            raise
        except Exception as e:  # noqa: BLE001 - reported with the codec
            raise BackendError(f"{self.name}: decoding failed: {e}") from e


def from_options(options, name: str) -> PostDecodedHevcBackend:
    return PostDecodedHevcBackend(options.postdecode, ffmpeg=options.ffmpeg,
                                  preset=options.x265_preset, cache_dir=options.hevc_cache)
