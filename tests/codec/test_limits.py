"""Bounded decoding (issue 16, findings 1 and 2): a stream claiming a huge image is refused
before anything large is allocated, the default limit follows the model's memory estimate and
an explicit ``max_pixels`` moves it; running out of memory is ``CodecMemoryError``, never
"corrupt bitstream"."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from codec import api, bitstream
from codec.bitstream import BitstreamError, Header, pack, unpack

from ..forge import REPO, image, shipped_models, tiny_models


@pytest.fixture(scope="module")
def every_model():
    return {**shipped_models(one_per_architecture=True), **tiny_models()}


@pytest.fixture(scope="module")
def img():
    return image(48, 64)


def test_bomb_is_refused_in_under_a_second_and_500_mb():
    """The acceptance test: a 200 KB stream claiming 16384x16384 (a real stream's sections,
    the latent padded to 200 KB), for every shipped checkpoint, in a fresh process; and, in
    untrusted mode, an 8 KB stream claiming 40000x193 (within the pixel limit: issue 32). Memory is
    the peak resident set over the resident set before (an upper bound of what it took).
    Beside it, a genuine 512x512 decode stays under the memory the limit's estimate assumes."""
    script = textwrap.dedent("""
        import json, resource, time
        import numpy as np
        from codec import api, limits
        from codec.bitstream import Header, pack, unpack
        from tests.forge import image, shipped_models

        def rss():  # current resident set, bytes
            return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()

        def peak():  # peak resident set since the last reset_peak(), bytes
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

        def reset_peak():  # Linux: "5" resets the peak, so one phase's peak is not the next's
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                pass

        out, models = {}, shipped_models(one_per_architecture=True)
        for name, model in models.items():  # the bombs first: nothing large before them
            header, sections = unpack(api.compress(image(64, 64), model))
            pad = 200_000 - sum(map(len, sections))
            sections[-2] += np.random.default_rng(0).bytes(pad - pad % 4)
            bomb = pack(Header(header.model_name, header.weights_hash, 16384, 16384,
                               header.delta, header.coding_order), sections)
            reset_peak()
            before, t0 = rss(), time.perf_counter()
            try:
                api.decompress(bomb, model)
                error = None
            except limits.StreamPixelLimitError as e:
                error = str(e)
            out[name] = {"bytes": len(bomb), "seconds": time.perf_counter() - t0,
                         "extra_bytes": max(0, peak() - before), "error": error}
            # issue 32: under the pixel limit, 8 KB for 40000x193, untrusted: refused as dear
            header, sections = unpack(api.compress(image(64, 64), model))
            pad = 8000 - sum(map(len, sections))
            sections[-2] += np.random.default_rng(1).bytes(pad - pad % 4)
            tall = pack(Header(header.model_name, header.weights_hash, 40000, 193,
                               header.delta, header.coding_order), sections)
            reset_peak()
            before, t0 = rss(), time.perf_counter()
            try:  # refused by its cost, or by the pixel limit first (stride 64: 256x40000)
                api.decode(tall, model, untrusted=True)
                error = None
            except (limits.StreamCostError, limits.StreamPixelLimitError) as e:
                error = str(e)
            out[name]["untrusted"] = {"seconds": time.perf_counter() - t0, "error": error,
                                      "extra_bytes": max(0, peak() - before)}
        for name, model in models.items():
            genuine = api.compress(image(512, 512), model)
            reset_peak()
            before = rss()
            api.decompress(genuine, model)
            out[name]["decode_512_extra"] = max(0, peak() - before)
            out[name]["estimate_512"] = limits.bytes_per_pixel(model) * 512 * 512
        print(json.dumps(out))
    """)
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                         text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    res = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(res) >= 2
    for name, r in res.items():
        assert 199_000 <= r["bytes"] <= 200_100, name
        assert r["error"] and "16384x16384" in r["error"], (name, r)
        assert r["seconds"] < 1.0, (name, r)
        assert r["extra_bytes"] < 500e6, (name, r)
        u = r["untrusted"]
        assert u["error"] and "193x40000" in u["error"], (name, u)
        assert u["seconds"] < 1.0 and u["extra_bytes"] < 500e6, (name, u)
        assert r["decode_512_extra"] <= r["estimate_512"], (name, r)


def test_over_the_limit_is_refused_before_decoding_and_raising_it_decodes(every_model, img,
                                                                         monkeypatch):
    from codec.limits import computed_pixels

    for name, model in every_model.items():
        n = computed_pixels(model, *img.shape[:2])  # 64x64 at stride 64: the limit counts these
        data = api.compress(img, model)
        real = api._decode_stages
        monkeypatch.setattr(api, "_decode_stages", lambda *a: pytest.fail("decoded anyway"))
        with pytest.raises(BitstreamError, match=r"64x48 image .*max_pixels") as err:
            api.decompress(data, model, max_pixels=n - 1)
        from codec.limits import PixelLimitError, StreamPixelLimitError

        assert isinstance(err.value, StreamPixelLimitError)
        monkeypatch.setattr(api, "_decode_stages", real)
        assert api.decompress(data, model, max_pixels=n).shape == img.shape, name
        with pytest.raises(PixelLimitError) as enc_err:  # the encoder has the same limit
            api.compress(img, model, max_pixels=n - 1)
        assert not isinstance(enc_err.value, BitstreamError)
    with pytest.raises(ValueError, match="positive integer"):
        api.decompress(data, model, max_pixels=0)


def test_the_default_limit_is_the_memory_budget(every_model, img):
    from codec import limits

    for name, model in every_model.items():
        bpp = limits.bytes_per_pixel(model)
        default = limits.default_max_pixels(model)
        assert default * bpp <= limits.MEMORY_BUDGET < (default + 1) * bpp or \
            default == bitstream.MAX_PIXELS, name
        header, sections = unpack(api.compress(img, model))
        side = int(default**0.5) // model.stride * model.stride  # padded: side x side
        over = Header(header.model_name, header.weights_hash, side + 1, side + 1,
                      header.delta, header.coding_order)
        with pytest.raises(limits.StreamPixelLimitError, match="the default for this model"):
            api.decompress(pack(over, sections), model)
        within = Header(header.model_name, header.weights_hash, side, side, header.delta,
                        header.coding_order)
        with pytest.raises(BitstreamError, match="too few for the"):  # the next check
            api.decompress(pack(within, sections), model)


def _oom(*args):
    torch.empty(2**62, dtype=torch.uint8)  # the allocator refuses at once: nothing is taken


def test_out_of_memory_is_its_own_error(every_model, img, monkeypatch):
    from codec.limits import CodecMemoryError

    for name, model in every_model.items():
        data = api.compress(img, model)
        hook = model.g_s.register_forward_hook(_oom)
        try:
            with pytest.raises(CodecMemoryError, match="out of memory decoding a 64x48") as e:
                api.decompress(data, model)
            assert not isinstance(e.value, BitstreamError), name
            assert "corrupt" not in str(e.value)
        finally:
            hook.remove()
        monkeypatch.setattr(api, "_decode_stages",
                            lambda *a: np.empty(2**62, dtype=np.uint8))  # numpy's MemoryError
        with pytest.raises(CodecMemoryError):
            api.decompress(data, model)
        monkeypatch.undo()
        hook = model.g_a.register_forward_hook(_oom)
        try:
            with pytest.raises(CodecMemoryError, match="out of memory coding a 64x48"):
                api.compress(img, model)
        finally:
            hook.remove()


def test_the_stage_floor_is_close_to_the_cheapest_real_stage():
    """The cheapest stage there is (a million zeros at the narrowest scale) passes the
    stage-length floor, and the same stage cut to 85 % does not: a small stream claims at most
    about 580 symbols a byte."""
    from codec.coding import EscapeWriter, encode_symbols

    n = 10**6
    zeros = torch.zeros(n, dtype=torch.int64)
    stage = encode_symbols(zeros, zeros, EscapeWriter())
    api._check_stage_lengths([stage], [(1, n)])
    with pytest.raises(BitstreamError, match="too few for the 1000000 symbols"):
        api._check_stage_lengths([stage[:int(0.85 * len(stage)) // 4 * 4]], [(1, n)])


# ---- issue 32: the pixels computed, and the untrusted-input policy --------------------------

def test_the_limit_counts_the_pixels_computed(every_model, img, monkeypatch):
    """Finding 2: a 193x57921 header is 11.18 Mpx but synthesised at 256x57984 = 14.84 Mpx
    (padded to the stride); the limit counts the latter, on both ends."""
    from codec import limits

    for name, model in every_model.items():
        header, sections = unpack(api.compress(img, model))
        tall = pack(Header(header.model_name, header.weights_hash, 57921, 193, header.delta,
                           header.coding_order), sections)
        computed = limits.computed_pixels(model, 57921, 193)
        assert computed == -(-57921 // model.stride) * model.stride * -(-193 // model.stride) \
            * model.stride > 57921 * 193, name
        with pytest.raises(limits.StreamPixelLimitError, match=f"{computed:,} pixels"):
            api.decompress(tall, model, max_pixels=57921 * 193)
        with pytest.raises(BitstreamError, match="too few for the"):  # past the limit
            api.decompress(tall, model, max_pixels=computed)
        h, w = img.shape[:2]
        with pytest.raises(limits.PixelLimitError, match="padded to the model's stride"):
            api.compress(img, model, max_pixels=h * w)  # 48x64 is coded as 64x64
        assert api.compress(img, model, max_pixels=limits.computed_pixels(model, h, w))
    mbt = next((m for n, m in every_model.items() if n.startswith("mbt2018")), None)
    if mbt is not None:  # the stream: under the default limit unpadded, not padded
        assert 57921 * 193 <= limits.default_max_pixels(mbt) < computed


CHEAP = 100  # pixels of work a byte: the bound the flat-stream tests hold streams to


def _flat_stream(model, h: int, w: int) -> bytes:
    """The cheapest valid stream of an h x w image: a flat image at bin width 2^19."""
    return api.compress(np.full((h, w, 3), 128, np.uint8), model, bin_width=2.0**19)


def test_untrusted_refuses_cheap_streams_of_large_images_from_the_header(every_model,
                                                                        monkeypatch):
    """Finding 3: a valid stream of a few hundred bytes for a 64x2048 image decodes as trusted
    input, and is refused in untrusted mode before anything is decoded or allocated: the
    section checks and the stage decoding are replaced by failures here."""
    from codec import limits
    from codec.coding import CODING_ORDER_NAMES

    for name, model in every_model.items():
        data = _flat_stream(model, 64, 2048)
        header, _ = unpack(data)
        order = CODING_ORDER_NAMES[header.coding_order]
        work = limits.decode_work(model, 64, 2048, order)
        # an untrained model's flat stream is not as cheap as a trained one's: a bound of 100
        # (what the shipped models' flat streams exceed at the default) stands for the policy
        assert work > CHEAP * len(data), (name, work, len(data))
        assert api.decompress(data, model).shape == (64, 2048, 3)
        with monkeypatch.context() as mp:
            for fn in ("stage_shapes", "_check_stage_lengths", "_decode_stages"):
                mp.setattr(api, fn, lambda *a, fn=fn: pytest.fail(f"{fn} ran"))
            with pytest.raises(limits.StreamCostError, match="max_pixels_per_byte") as e:
                api.decompress(data, model, untrusted=True, max_pixels_per_byte=CHEAP)
        assert isinstance(e.value, BitstreamError) and "corrupt" not in str(e.value)
        assert f"{work:,} pixels" in str(e.value)
        # the limit is work / bytes, both ways, in either mode
        per_byte = -(-work // len(data))
        assert api.decompress(data, model, untrusted=True,
                              max_pixels_per_byte=per_byte).shape == (64, 2048, 3)
        with pytest.raises(limits.StreamCostError):
            api.decompress(data, model, max_pixels_per_byte=(work - 1) // len(data))


def test_the_decoding_work_counts_pixels_and_wavefront_steps(every_model):
    from codec import limits
    from codec.context.wavefront import wavefront_schedule

    for model in every_model.values():
        for h, w in [(1, 1), (48, 64), (193, 70), (64, 1000)]:
            steps = limits.wavefront_steps(model, h, w, "wavefront")
            context = getattr(model, "context", None)
            if context is None:
                assert steps == 0
            else:
                shape = api.stage_shapes(model, h, w)[0]
                assert steps == len(wavefront_schedule(shape[2], shape[3], context.kernel))
            assert limits.wavefront_steps(model, h, w, "parallel") == 0
            assert limits.decode_work(model, h, w, "wavefront") == \
                limits.computed_pixels(model, h, w) + limits.STEP_PIXELS * steps \
                + limits.STREAM_PIXELS


def test_untrusted_mode_accepts_photographs(sample_images):
    """The shipped architectures' streams of two sample Kodak images at the default bin width,
    and Kodak-sized streams at the lowest track (0.075 bpp: the dearest genuine streams a byte),
    are within the untrusted default (kodim03 is what the policy was measured against)."""
    from codec import limits

    # the work a byte depends on the architecture, not the weights: one checkpoint of each
    one_each = shipped_models(one_per_architecture=True)
    assert len(one_each) >= 3  # the hyperprior, mbt2018 and hific shipped
    for name, model in one_each.items():
        order = model.config.get("coding_order", "parallel")
        for key in ("kodim03", "kodim23"):
            image = sample_images[key]
            data = api.compress(image, model)
            res = api.decode(data, model, untrusted=True)
            assert np.array_equal(res.image, api.decompress(data, model)), name
            work = limits.decode_work(model, *image.shape[:2], order)
            assert work / len(data) < limits.UNTRUSTED_PIXELS_PER_BYTE, (name, key)
        # the lowest track from the header alone: a Kodak-sized stream of 0.06 bpp (20 % under
        # the 0.075 target, as rate control may land) is admitted; stream length is all it reads
        h, w = 512, 768
        nbytes = int(0.06 * h * w / 8)
        limits.check_work(model, h, w, order, nbytes, limits.UNTRUSTED_PIXELS_PER_BYTE)
        limits.check_work(model, w, h, order, nbytes, limits.UNTRUSTED_PIXELS_PER_BYTE)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, math.nan, math.inf, "200"])
def test_max_pixels_per_byte_must_be_a_positive_integer(bad):
    model = tiny_models()["hific-tiny"]
    data = api.compress(image(16, 16), model)
    with pytest.raises(ValueError, match="max_pixels_per_byte must be a positive integer"):
        api.decompress(data, model, max_pixels_per_byte=bad)


def test_untrusted_mode_covers_the_hevc_post_decoder(monkeypatch):
    """``codec.api.decode`` dispatches a post-decoded HEVC stream to ``codec.postdecode``; the
    untrusted bound applies there too (work: its pixels + STREAM_PIXELS), before ffmpeg."""
    from codec import limits, postdecode
    from codec.postdecode import api as pd_api

    torch.manual_seed(0)
    model = postdecode.build({"channels": 8, "blocks": 1}).eval()
    reached = []
    monkeypatch.setattr(pd_api.hevc, "decode", lambda *a, **k: reached.append(1) or
                        pytest.skip("not reached: the bound refused first"))
    bomb = pd_api.wrap(bytes(200), 30, 2048, 2048, model)
    with pytest.raises(limits.StreamCostError, match="2048x2048"):
        api.decode(bomb, model, untrusted=True)
    assert not reached
    with pytest.raises(limits.StreamCostError):
        api.decode(bomb, model, max_pixels_per_byte=1000)
    small = pd_api.wrap(bytes(200), 30, 16, 16, model)  # (256 + 8192) / 200+ bytes: accepted
    monkeypatch.setattr(pd_api.hevc, "decode", lambda *a, **k: reached.append(1) or
                        np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(BitstreamError, match="holds a 1x1 picture"):
        api.decode(small, model, untrusted=True)
    assert reached
