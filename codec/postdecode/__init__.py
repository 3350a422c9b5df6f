"""A learned post-decoder for classic bitstreams: HEVC's bits, decoded into better images.

The stream is the HEVC intra bitstream of ``hevc-bpgcfg`` (BPG's settings, ``codec.hevc``)
inside a small container (``container``: magic, version, the stage's weights hash, the QP, the
picture size). Decoding runs ffmpeg's HEVC decoder, then a residual CNN (``stage``) conditioned
on the QP, trained with the codec's perceptual losses (``python -m codec.train.postdecode``).
No bit changes: the rate is HEVC's plus the container's 19-21 bytes. ``api``: encode, decode,
checkpoints (kind ``postdecode``).
"""

from .api import (
    KIND,
    DecodeResult,
    EncodeResult,
    RateControlError,
    compress,
    decode,
    decompress,
    encode,
    enhance,
    load,
    save,
)
from .container import MAGIC, is_stream
from .stage import NAME, PostDecoder, build

CODEC_NAME = "hevc-bpgcfg-pd"

__all__ = ["CODEC_NAME", "KIND", "MAGIC", "NAME", "DecodeResult", "EncodeResult", "PostDecoder",
           "RateControlError", "build", "compress", "decode", "decompress", "encode", "enhance",
           "is_stream", "load", "save"]
