"""Threads do not change pixels (issue 16, finding 7): one stream decodes to the same image at
1, 2 and 3 torch threads, and one image codes to the same stream, for every shipped
checkpoint. Before the fix oneDNN's 1x1 convolution (GDN) at 2+ threads and its transposed
convolution at 3 threads moved 1-2 pixels of this crop by one level."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codec import api

from ..forge import shipped_models

THREADS = (1, 2, 3)


@pytest.fixture(scope="module")
def crop(sample_images):
    return np.ascontiguousarray(sample_images["kodim03"][128:384, 192:576])  # 256 x 384


@pytest.fixture()
def restore_threads():
    n = torch.get_num_threads()
    yield n
    torch.set_num_threads(n)


def test_streams_and_pixels_do_not_depend_on_the_thread_count(crop, restore_threads):
    for name, model in shipped_models(one_per_architecture=True).items():
        streams, images = {}, {}
        for t in THREADS:
            torch.set_num_threads(t)
            streams[t] = api.compress(crop, model, bin_width=0.5)
        for t in THREADS:
            torch.set_num_threads(t)
            images[t] = api.decompress(streams[1], model)
            assert torch.get_num_threads() == t  # the caller's count is given back
        for t in THREADS[1:]:
            assert streams[t] == streams[1], (name, t)
            assert np.array_equal(images[t], images[1]), (
                name, t, int((images[t] != images[1]).sum()))
