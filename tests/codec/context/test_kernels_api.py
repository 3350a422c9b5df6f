"""The codec's own coding path (codec.api) runs the compiled context step where it is built, and
its streams are byte-identical to the PyTorch reference's, in both directions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codec import api, models
from codec.context import kernels


@pytest.fixture(scope="module")
def cpu_ext():
    mod = kernels.load("cpu")
    if mod is None:
        pytest.skip(f"C++ kernel not built here: {kernels.error('cpu')}")
    return mod


def test_api_uses_the_compiled_step_and_matches_the_reference(cpu_ext, monkeypatch):
    torch.manual_seed(3)
    model = models.build("mbt2018", "tiny").eval()
    image = np.random.default_rng(1).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    calls = []
    compiled = kernels.compiled_params

    def counting(mod, *args, **kw):
        calls.append(mod)
        return compiled(mod, *args, **kw)

    monkeypatch.setattr(kernels, "compiled_params", counting)
    with_kernel = api.encode(image, model, bin_width=1.0).data
    assert calls and all(m is cpu_ext for m in calls)
    decoded_kernel = api.decode(with_kernel, model).image

    n = len(calls)
    monkeypatch.setenv("PLIC_KERNELS", "0")
    reference = api.encode(image, model, bin_width=1.0).data
    decoded_reference = api.decode(with_kernel, model).image
    assert len(calls) == n  # the reference path did not touch the kernel
    assert reference == with_kernel
    np.testing.assert_array_equal(decoded_reference, decoded_kernel)
