"""The coder's thread policy: on CPU, coding runs on one torch thread.

CPU kernels split their float sums by thread count, so results repeat bit for bit only at a
fixed count. Measured on this project's 2-core x86_64 box (torch 2.14, oneDNN 3.12): 1 vs 2
threads moves discretised entropy parameters of the small models, and oneDNN's 1x1 convolution
(GDN) at 2 or more threads and its transposed convolution at 3 threads move pixels of ``g_s``
(one level in 16 to 25 of kodim01's 393,216 values, both shipped checkpoints). One thread is
the count for the parameter path and both transforms, so streams and pixels do not depend on
the caller's thread count. On a shared CPU it is also the fastest: decoding a 64x48 stream with
a freshly loaded shipped model took 0.04 s on one thread and 1.1 s on two (load average 6-8).
"""

from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def one_thread():
    """torch on one CPU thread inside, the caller's count restored after."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def exact_mode():
    """One CPU thread (``one_thread``), no autograd, deterministic kernels, no TF32 (cuDNN and
    CUDA matmuls): parameters, streams and pixels repeat bit for bit whatever the caller's
    thread count. Every coding and post-decoding path runs inside it."""
    with torch.no_grad(), one_thread(), torch.backends.cudnn.flags(
            enabled=True, benchmark=False, deterministic=True, allow_tf32=False):
        old = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32 = old
