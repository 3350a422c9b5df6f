"""Fixed-point arithmetic of the parameter path (codec.context.intmath)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from codec.coding import CodingError
from codec.context.intmath import (
    ACT_BITS,
    WEIGHT_BITS,
    FixedPointError,
    check_no_overflow,
    from_fixed,
    int_channel_norm,
    int_linear,
    int_prelu,
    isqrt,
    linear_to_fixed,
    rshift_round,
    to_fixed,
)


def test_rshift_round_is_round_half_up():
    x = torch.arange(-40, 41, dtype=torch.int64)
    expect = torch.tensor([math.floor(v / 8 + 0.5) for v in x.tolist()])
    assert torch.equal(rshift_round(x, 3), expect)


def test_isqrt_is_exact():
    g = torch.Generator().manual_seed(0)
    n = torch.cat([torch.arange(0, 2000), torch.randint(0, 2**62, (2000,), generator=g),
                   torch.tensor([2**62 - 1, 2**40, 2**40 - 1])])
    got = isqrt(n)
    assert got.tolist() == [math.isqrt(v) for v in n.tolist()]
    with pytest.raises(ValueError):
        isqrt(torch.tensor([-1]))


def test_int_linear_is_exact_integer_arithmetic():
    g = torch.Generator().manual_seed(1)
    x = torch.randint(-(2**20), 2**20, (5, 33), generator=g)
    w = torch.randint(-(2**13), 2**13, (7, 33), generator=g)
    b = torch.randint(-(2**30), 2**30, (7,), generator=g)
    out = int_linear(x, w, b)
    for p in range(5):
        for o in range(7):
            acc = sum(int(x[p, k]) * int(w[o, k]) for k in range(33)) + int(b[o])
            assert out[p, o] == (acc + 2 ** (WEIGHT_BITS - 1)) >> WEIGHT_BITS


def test_prelu_and_channel_norm_follow_their_float_forms():
    from codec.layers import ChannelNorm

    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 16, 3, 4, generator=g) * 4
    slope = torch.rand(16, generator=g)
    x_fx = to_fixed(x, ACT_BITS)
    got = from_fixed(int_prelu(x_fx.permute(0, 2, 3, 1), to_fixed(slope, WEIGHT_BITS)),
                     ACT_BITS).permute(0, 3, 1, 2)
    ref = torch.where(x >= 0, x, x * slope.reshape(1, -1, 1, 1))
    assert float((got - ref).abs().max()) < 2e-3
    cn = ChannelNorm(16)
    with torch.no_grad():
        cn.weight.copy_(torch.rand(1, 16, 1, 1, generator=g) + 0.5)
        cn.bias.copy_(torch.randn(1, 16, 1, 1, generator=g))
    got = int_channel_norm(x_fx, to_fixed(cn.weight.reshape(-1), WEIGHT_BITS),
                           to_fixed(cn.bias.reshape(-1), ACT_BITS), int(cn.eps * 2**(2 * ACT_BITS)))
    with torch.no_grad():
        ref = cn(x).double()
    assert float((from_fixed(got, ACT_BITS) - ref).abs().max()) < 5e-3


def test_overflow_is_refused_at_conversion():
    layer = torch.nn.Linear(4, 2)
    with torch.no_grad():
        layer.weight.fill_(2.0**40)
    with pytest.raises(FixedPointError):
        linear_to_fixed(layer)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 1e30, -(2.0**47)])
def test_a_value_without_an_int64_form_is_refused(bad):
    """Issue 32, finding 1: NaN, infinities and values beyond +-2**62 once scaled used to
    become INT64_MIN (a silent cast), which then passed ``check_no_overflow``."""
    x = torch.tensor([[bad, 1.0], [0.5, -0.25]])
    with pytest.raises(FixedPointError, match="no fixed-point form") as e:
        to_fixed(x, WEIGHT_BITS, "the test weight")
    assert isinstance(e.value, CodingError) and "the test weight" in str(e.value)
    assert to_fixed(x[1:], WEIGHT_BITS).tolist() == [[2**15, -(2**14)]]
    assert to_fixed(torch.tensor([-(2.0**45)]), WEIGHT_BITS).tolist() == [-(2**61)]
    layer = torch.nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight[0, 1] = bad
    with pytest.raises(FixedPointError, match="context layer 3's weight"):
        linear_to_fixed(layer, what="context layer 3")


def test_the_overflow_bound_cannot_wrap():
    """|INT64_MIN| is INT64_MIN in int64 and a row of large weights sums past 2**63: either
    used to make the bound negative, and the check passed."""
    b = torch.zeros(1, dtype=torch.int64)
    with pytest.raises(FixedPointError, match="exceeds 2\\*\\*62"):
        check_no_overflow(torch.tensor([[-(2**63), 2**16]]), b, "min", input_limit=1)
    with pytest.raises(FixedPointError, match="exceeds 2\\*\\*62"):
        check_no_overflow(torch.tensor([[2**62 - 1] * 3]), b, "row", input_limit=1)
    with pytest.raises(FixedPointError):
        check_no_overflow(torch.tensor([[1]]), torch.tensor([-(2**63)]), "bias", input_limit=1)
    check_no_overflow(torch.tensor([[2**20, -(2**20)]]), torch.tensor([2**40]), "fine")


@pytest.mark.parametrize("transposed", [False, True])
def test_a_hyper_decoder_whose_sums_could_wrap_is_refused(transposed):
    """A finite weight with an int64 form whose accumulators could still leave int64 (2**40:
    2**56 at 16 bits, times activations up to 2**30) is refused like the context model's,
    instead of wrapping silently (issue 32)."""
    from codec.context.intnet import ExactSequential

    torch.manual_seed(0)
    conv = (torch.nn.ConvTranspose2d(4, 4, 5, 2, 2, 1) if transposed
            else torch.nn.Conv2d(4, 4, 3, 1, 1))
    exact = ExactSequential(conv).eval()
    z = torch.round(torch.randn(1, 4, 3, 3) * 3)
    exact(z)  # fine as initialised
    with torch.no_grad():
        conv.weight[0, 1, 1, 1] = 2.0**40
    with pytest.raises(FixedPointError, match="exceeds 2\\*\\*62") as e:
        exact(z)
    assert isinstance(e.value, CodingError)


def test_integer_hyper_decoder_is_exact_across_threads_and_dtypes():
    from codec.context.intnet import ExactSequential
    from codec.models import build

    torch.manual_seed(0)
    hs = build("hific", "small").h_s[0]
    z = torch.round(torch.randn(1, 12, 6, 8) * 3)
    exact = ExactSequential(*hs).eval()
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = exact(z)
        torch.set_num_threads(2)
        two = exact(z)
    finally:
        torch.set_num_threads(n)
    dbl = copy.deepcopy(exact).double()(z.double())
    assert torch.equal(one, two) and torch.equal(one.double(), dbl)
    assert torch.equal(to_fixed(one, ACT_BITS), exact.forward_fixed(to_fixed(z, ACT_BITS)))
    with torch.no_grad():
        ref = hs(z)
    assert float((one - ref).abs().max()) < 0.02  # fixed point stays close to the float net
    exact.train()
    assert torch.equal(exact(z), hs(z))  # training runs the float layers
