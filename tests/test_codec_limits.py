"""Bounded decoding (issue 16, findings 1 and 2): a stream claiming a huge image is refused
before anything large is allocated, the default limit follows the model's memory estimate and
an explicit ``max_pixels`` moves it; running out of memory is ``CodecMemoryError``, never
"corrupt bitstream"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from codec import api, bitstream
from codec.bitstream import BitstreamError, Header, pack, unpack

from .forge import REPO, image, shipped_models, tiny_models


@pytest.fixture(scope="module")
def every_model():
    return {**shipped_models(), **tiny_models()}


@pytest.fixture(scope="module")
def img():
    return image(48, 64)


def test_bomb_is_refused_in_under_a_second_and_500_mb():
    """The acceptance test: a 200 KB stream claiming 16384x16384 (a real stream's sections,
    the latent padded to 200 KB), for every shipped checkpoint, in a fresh process. Memory is
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

        def peak():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

        out, models = {}, shipped_models()
        for name, model in models.items():  # the bombs first: nothing large before them
            header, sections = unpack(api.compress(image(64, 64), model))
            pad = 200_000 - sum(map(len, sections))
            sections[-2] += np.random.default_rng(0).bytes(pad - pad % 4)
            bomb = pack(Header(header.model_name, header.weights_hash, 16384, 16384,
                               header.delta, header.coding_order), sections)
            before, t0 = rss(), time.perf_counter()
            try:
                api.decompress(bomb, model)
                error = None
            except limits.StreamPixelLimitError as e:
                error = str(e)
            out[name] = {"bytes": len(bomb), "seconds": time.perf_counter() - t0,
                         "extra_bytes": max(0, peak() - before), "error": error}
        for name, model in models.items():
            genuine = api.compress(image(512, 512), model)
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
        assert r["decode_512_extra"] <= r["estimate_512"], (name, r)


def test_over_the_limit_is_refused_before_decoding_and_raising_it_decodes(every_model, img,
                                                                         monkeypatch):
    n = img.shape[0] * img.shape[1]
    for name, model in every_model.items():
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
        side = int(default**0.5)
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
