"""The post-decoded HEVC codec (codec.postdecode): container, identity start, round trip,
refusals, determinism across thread counts and processes."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from codec import postdecode as pd
from codec.bitstream import BitstreamError
from codec.limits import StreamPixelLimitError
from codec.postdecode import container
from plic.checkpoint import CheckpointError

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


def _image(h=48, w=64, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 3, yy * 4, (xx + yy) * 2], -1) % 256
    return np.clip(base + rng.integers(-20, 21, (h, w, 3)), 0, 255).astype(np.uint8)


def _trained(seed=1, **cfg) -> pd.PostDecoder:
    """A stage with random non-zero weights everywhere (as after training)."""
    torch.manual_seed(seed)
    m = pd.build(cfg or {"channels": 16, "blocks": 2})
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m.eval()


def test_container_round_trip_and_layout():
    h = container.Header(b"\x01" * 8, 43, 512, 768)
    data = container.pack(h, b"\x00\x00\x00\x01hevc")
    assert data[:4] == b"PLPD" and data[4] == container.FORMAT_VERSION
    back, payload = container.unpack(data)
    assert back == h and payload == b"\x00\x00\x00\x01hevc"
    # magic 4 + version 1 + hash 8 + qp 1 + 2 + 2 + 1 varint bytes
    assert len(data) - len(payload) == 19


@pytest.mark.parametrize("mutate, message", [
    (lambda d: b"PLIC" + d[4:], "bad magic"),
    (lambda d: d[:4] + bytes([9]) + d[5:], "version 9 is not supported"),
    (lambda d: d[:-3], "truncated stream: the HEVC payload holds 5 of its 8 bytes"),
    (lambda d: d[:10], "truncated stream: ends inside the header"),
    (lambda d: d[:15], "truncated stream: ends inside the image width"),
    (lambda d: d + b"x", "1 bytes after the HEVC payload"),
    (lambda d: d[:13] + bytes([52]) + d[14:], "QP 52 out of range"),
    (lambda d: b"", "bad magic"),
])
def test_container_refusals_are_one_line(mutate, message):
    data = container.pack(container.Header(b"\x02" * 8, 30, 40, 300), b"12345678")
    with pytest.raises(BitstreamError, match=message) as e:
        container.unpack(mutate(data))
    assert "\n" not in str(e.value)


def test_container_refuses_huge_claimed_size():
    d = bytearray(container.pack(container.Header(b"\x02" * 8, 30, 40, 300), b"1"))
    forged = bytes(d[:14]) + bytes([0x80, 0x80, 0x04]) + bytes([0x80, 0x80, 0x04]) + b"\x01" + b"1"
    with pytest.raises(BitstreamError, match="image size .* out of range"):
        container.unpack(forged)


def test_untrained_stage_is_exactly_the_identity():
    img = _image(37, 51)  # odd sizes: padded to the stage's grid and cropped back
    m = pd.build().eval()
    assert np.array_equal(pd.enhance(img, 40, m), img)


def test_stage_changes_pixels_once_trained_and_depends_on_qp():
    img = _image()
    m = _trained()
    a, b = pd.enhance(img, 36, m), pd.enhance(img, 48, m)
    assert not np.array_equal(a, img) and not np.array_equal(a, b)


def test_checkpoint_round_trip_and_kind(tmp_path):
    m = _trained()
    path = pd.save(m, tmp_path / "pd.pt", {"note": "test"})
    back = pd.load(path)
    img = _image()
    assert np.array_equal(pd.enhance(img, 40, back), pd.enhance(img, 40, m))
    from plic.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "codec.pt", "codec", "x", {}, {}, {})
    with pytest.raises(CheckpointError, match="expected 'postdecode'"):
        pd.load(tmp_path / "codec.pt")


def _digest(img: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(img).tobytes()).hexdigest()


def test_pixels_identical_across_thread_counts(tmp_path):
    img = _image(96, 128, seed=3)
    m = _trained(channels=32, blocks=2)
    outs = []
    for n in (1, 2, 3):
        old = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            outs.append(pd.enhance(img, 42, m))
        finally:
            torch.set_num_threads(old)
        assert torch.get_num_threads() == old
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


def test_pixels_identical_across_processes(tmp_path):
    img = _image(64, 96, seed=4)
    m = _trained(channels=32, blocks=2)
    path = pd.save(m, tmp_path / "pd.pt")
    np.save(tmp_path / "img.npy", img)
    code = ("import sys, hashlib, numpy as np, torch; from codec import postdecode as pd; "
            "torch.set_num_threads(int(sys.argv[3])); "
            "m = pd.load(sys.argv[1]); img = np.load(sys.argv[2]); "
            "print(hashlib.sha256(pd.enhance(img, 42, m).tobytes()).hexdigest())")
    got = {subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "img.npy"),
                           str(n)], capture_output=True, text=True, check=True).stdout.strip()
           for n in (1, 2)}
    assert got == {_digest(pd.enhance(img, 42, m))}


@needs_ffmpeg
def test_round_trip_identity_start_matches_hevc_decode():
    from codec import hevc

    img = _image(48, 64)
    m = pd.build().eval()
    res = pd.encode(img, m, qp=34)
    assert res.bpp == pytest.approx(8 * len(res.data) / (48 * 64))
    header, payload = container.unpack(res.data)
    assert (header.qp, header.height, header.width) == (34, 48, 64)
    assert payload == hevc.encode(img, 34)  # the very bytes hevc-bpgcfg writes
    dec = pd.decode(res.data, m)
    assert np.array_equal(dec.image, hevc.decode(payload)) and dec.qp == 34


@needs_ffmpeg
def test_round_trip_trained_stage_and_target_bpp():
    img = _image(48, 64, seed=2)
    m = _trained()
    res = pd.encode(img, m, target_bpp=2.0)
    assert res.bpp <= 2.0
    assert pd.encode(img, m, qp=res.qp - 1).bpp > 2.0 if res.qp > 0 else True
    header, _ = container.unpack(res.data)
    from codec import hevc

    expect = pd.enhance(hevc.decode(container.unpack(res.data)[1]), header.qp, m)
    assert np.array_equal(pd.decompress(res.data, m), expect)


@needs_ffmpeg
def test_decode_refusals():
    img = _image(48, 64)
    m = pd.build().eval()
    data = pd.encode(img, m, qp=40).data
    other = _trained()
    with pytest.raises(BitstreamError, match="other post-decoder weights"):
        pd.decode(data, other)
    with pytest.raises(StreamPixelLimitError, match="over the limit of 1,000 pixels"):
        pd.decode(data, m, max_pixels=1000)
    with pytest.raises(BitstreamError, match="truncated"):
        pd.decode(data[:-5], m)
    # a payload whose picture is not the header's size
    h, payload = container.unpack(data)
    forged = container.pack(container.Header(h.weights_hash, h.qp, 50, 64), payload)
    with pytest.raises(BitstreamError, match="header says 64x50"):
        pd.decode(forged, m)
    junk = container.pack(container.Header(h.weights_hash, h.qp, 48, 64), b"\x00" * 40)
    with pytest.raises(BitstreamError, match="corrupt stream"):
        pd.decode(junk, m)


@needs_ffmpeg
def test_codec_api_compress_and_decompress_handle_it(tmp_path, capsys):
    from codec import api
    from codec import compress as compress_cmd
    from codec import decompress as decompress_cmd
    from plic.image_io import read_image, write_png

    m = _trained()
    ckpt = pd.save(m, tmp_path / "pd.pt")
    img = _image(40, 56, seed=5)
    write_png(tmp_path / "img.png", img)
    model = api.load(ckpt)
    assert model.name == pd.NAME
    res = api.encode(img, model, target_bpp=4.0)
    assert res.bpp <= 4.0 and container.unpack(res.data)[0].qp == res.qp
    assert np.array_equal(api.decompress(res.data, model), pd.decompress(res.data, m))
    with pytest.raises(ValueError, match="codes at a QP"):
        api.encode(img, model, bin_width=1.0)

    assert compress_cmd.main([str(tmp_path / "img.png"), str(tmp_path / "a.hpd"), "--model",
                              str(ckpt), "--qp", "38"]) == 0
    # no --model: found next to the stream by the weights hash the container names
    assert decompress_cmd.main([str(tmp_path / "a.hpd"), str(tmp_path / "a.png")]) == 0
    data = (tmp_path / "a.hpd").read_bytes()
    assert container.unpack(data)[0].qp == 38
    assert np.array_equal(read_image(tmp_path / "a.png"), pd.decompress(data, m))
    capsys.readouterr()
    (tmp_path / "t.hpd").write_bytes(data[:-4])
    assert decompress_cmd.main([str(tmp_path / "t.hpd"), str(tmp_path / "t.png")]) == 2
    err = capsys.readouterr().err
    assert "truncated stream" in err and err.count("\n") == 1
    assert not (tmp_path / "t.png").exists()
    assert compress_cmd.main([str(tmp_path / "img.png"), str(tmp_path / "b.hpd"), "--model",
                              str(ckpt), "--bin-width", "2"]) == 2
    assert "codes at a QP" in capsys.readouterr().err



@needs_ffmpeg
def test_side_by_side_figure_at_one_to_one(tmp_path):
    from codec.postdecode import figure

    img = _image(64, 80, seed=6)
    canvas, info = figure.figure(img, pd.build().eval(), 3.0, crop=48)
    assert canvas.shape == (48 + 34, 3 * 48 + 8, 3)
    tiles = [canvas[34:, i * 52:i * 52 + 48] for i in range(3)]
    x, y = info["crop"]["x"], info["crop"]["y"]
    assert np.array_equal(tiles[0], img[y:y + 48, x:x + 48])  # 1:1, no scaling
    assert info["hevc"]["bpp"] <= 3.0 and info["pd"]["bpp"] <= 3.0
    if info["hevc"]["qp"] == info["pd"]["qp"]:  # identity stage: the very HEVC decode
        assert np.array_equal(tiles[1], tiles[2])
