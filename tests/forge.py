"""Forged bitstreams for the decoder's tests: correctly framed and checksummed streams whose
content the real encoder would never write (extreme latent symbols, non-canonical varints).

``forge_symbol`` runs the real encoder with the format's symbol check switched off and the
LAST latent symbol in coding order replaced: nothing is coded after it, so every other symbol
keeps its real context and the stream is exactly what an encoder of that symbol writes."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

import codec.coding as coding
import codec.context.latent as latent
import codec.context.wavefront as wavefront
from codec import api, models

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "checkpoints").glob("*.pt"))


def shipped_models(one_per_architecture: bool = False) -> dict:
    """The shipped learned codecs (plic bitstreams): other checkpoints in checkpoints/, e.g.
    the HEVC post-decoder (codec.postdecode), have streams of their own and are left out.
    ``one_per_architecture``: the first of each architecture only, for checks that depend on
    the architecture and not on the weights (limits, symbol bounds, thread counts)."""
    from plic.checkpoint import load_checkpoint

    out, seen = {}, set()
    for p in SHIPPED:
        if load_checkpoint(p)["kind"] != "codec":
            continue
        model = api.load(p)
        # the architecture: the model and its parameters' names and shapes (a config also
        # records training choices such as the track, which change no code path)
        key = (model.name, tuple((k, tuple(v.shape)) for k, v in model.state_dict().items()))
        if one_per_architecture and key in seen:
            continue
        seen.add(key)
        out[p.stem] = model
    return out


def tiny_models() -> dict:
    torch.manual_seed(0)
    return {"hific-tiny": models.build("hific", "tiny").eval()}


def recrc(body: bytes) -> bytes:
    """``body`` with its checksum appended (a stream whose CRC matches its edits)."""
    return body + struct.pack("<I", zlib.crc32(body))


def image(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth test image (gradients and a disc): real content at a small size."""
    yy, xx = np.mgrid[0:h, 0:w]
    r = ((yy - h / 2) ** 2 + (xx - w / 3) ** 2) < (min(h, w) / 3) ** 2
    rng = np.random.default_rng(seed)
    img = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), 200 * r], -1)
    return np.clip(img + rng.integers(-8, 9, img.shape), 0, 255).astype(np.uint8)


def forge_symbol(model, img: np.ndarray, value: int, bin_width: float = 1.0) -> bytes:
    """The stream of ``img`` whose last latent symbol (coding order) is ``value``."""
    import pytest

    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(coding, "check_symbols", lambda k, delta: None, raising=False)
        mp.setattr(wavefront, "check_symbols", lambda k, delta: None, raising=False)
        order = model.config.get("coding_order", "parallel")
        if order == "wavefront":
            real_source = latent.quantizer_source

            def source_with_last(y, grid, delta):
                src = real_source(y, grid, delta)
                h, w = y.shape[1:]
                last = len(wavefront.wavefront_schedule(h, w, model.context.kernel)) - 1

                def forged(t, rows, cols, m, idx):
                    k = src(t, rows, cols, m, idx)
                    if t == last:
                        k = k.clone()
                        k[-1, -1] = value
                    return k
                return forged
            mp.setattr(latent, "quantizer_source", source_with_last)
        else:
            real = coding.to_symbols
            shapes = api.stage_shapes(model, *img.shape[:2])

            def to_symbols(v, means_q, delta):
                k = real(v, means_q, delta)
                if tuple(k.shape) == tuple(shapes[0]):  # the latent y, not a hyper stage
                    k = k.clone()
                    k.view(-1)[-1] = value
                return k
            mp.setattr(coding, "to_symbols", to_symbols)
        return api.compress(img, model, bin_width=bin_width)
    finally:
        mp.undo()


def varint_variants(data: bytes) -> list[bytes]:
    """Non-canonical re-encodings (a redundant 0x80 continuation, 1-2 extra bytes) of the
    stream's height, width and every section length, each with a recomputed checksum."""
    from codec.bitstream import unpack

    header, sections = unpack(data)
    name_len = data[5]
    pos = 6 + name_len + 8
    fields = []  # (start, end) of each varint in order: height, width, lengths
    for _ in range(2):
        end = pos
        while data[end] & 0x80:
            end += 1
        fields.append((pos, end + 1))
        pos = end + 1
    pos += 4 + 2  # delta, order, sections
    for _ in sections:
        end = pos
        while data[end] & 0x80:
            end += 1
        fields.append((pos, end + 1))
        pos = end + 1
    out = []
    body = data[:-4]
    for start, end in fields:
        raw = bytearray(body[start:end])
        for extra in (1, 2):
            padded = bytearray(raw)
            padded[-1] |= 0x80
            padded += b"\x80" * (extra - 1) + b"\x00"
            out.append(recrc(body[:start] + bytes(padded) + body[end:]))
    return out


class ToyMetric(nn.Module):
    """A frozen differentiable d(x, y) -> (N,), standing in for the fitted metric."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g) * 0.3)
        self.requires_grad_(False)

    def forward(self, x, y):
        return (self.conv(x) - self.conv(y)).pow(2).mean((1, 2, 3))
