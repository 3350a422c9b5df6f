// C++ CPU kernel of the integer context step: codec.context.step.context_step with
// IntStepWeights, bit for bit, parallel over positions (at::parallel_for).
// Twin and parity test: codec/context/step.py, tests/codec/context/test_kernels.py.
// light headers (not torch/extension.h): the JIT build takes a fraction of the time
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/csrc/utils/pybind.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "context_step.h"
#include "context_step_host.h"

namespace plic {
namespace {

// AVX2 clone picked at load time where the CPU has it (GCC function multiversioning): the
// uint64 multiply-adds vectorise there; the default clone runs anywhere.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define PLIC_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define PLIC_CLONES
#endif

// y = [residual +] act(clamp(rshift_round(W x + b [+ extra]))) (layer_epilogue, context_step.h);
// four output rows at a time, so each input is loaded once per four multiply-adds. extra
// (nullable): the head's hyper-feature half computed elsewhere (see context_params_cpu).
PLIC_CLONES void layer(const LayerDesc& L, const int64_t* __restrict__ x, int64_t* y,
                       const int64_t* residual, int wb, int64_t limit, const int64_t* extra) {
  const int64_t n = L.in;
  const uint64_t* xu = reinterpret_cast<const uint64_t*>(x);
  int64_t o = 0;
  for (; o + 4 <= L.out; o += 4) {
    const uint64_t* w0 = reinterpret_cast<const uint64_t*>(L.w + o * n);
    const uint64_t *w1 = w0 + n, *w2 = w1 + n, *w3 = w2 + n;
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (int64_t k = 0; k < n; ++k) {
      const uint64_t v = xu[k];
      a0 += v * w0[k];
      a1 += v * w1[k];
      a2 += v * w2[k];
      a3 += v * w3[k];
    }
    const uint64_t acc[4] = {a0, a1, a2, a3};
    for (int q = 0; q < 4; ++q) layer_epilogue(L, o + q, acc[q], y, residual, wb, limit, extra);
  }
  for (; o < L.out; ++o) {
    const uint64_t* wr = reinterpret_cast<const uint64_t*>(L.w + o * n);
    uint64_t acc = 0;
    for (int64_t k = 0; k < n; ++k) acc += xu[k] * wr[k];
    layer_epilogue(L, o, acc, y, residual, wb, limit, extra);
  }
}

// The same layer when the inputs and weights fit in int32 (activations are clamped to
// +-(2^30 - 1), weights of a trained model are far below 2^31): each product is a widening
// 32 x 32 -> 64 bit multiply (vpmuldq under AVX2) and equals the int64 product exactly, so the
// wrapped uint64 sums are the very same as layer()'s.
PLIC_CLONES void layer32(const LayerDesc& L, const int32_t* __restrict__ w32,
                         const int32_t* __restrict__ x, int64_t* y, const int64_t* residual,
                         int wb, int64_t limit, const int64_t* extra) {
  const int64_t n = L.in;
  int64_t o = 0;
  for (; o + 4 <= L.out; o += 4) {
    const int32_t* w0 = w32 + o * n;
    const int32_t *w1 = w0 + n, *w2 = w1 + n, *w3 = w2 + n;
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (int64_t k = 0; k < n; ++k) {
      const int64_t v = x[k];
      a0 += static_cast<uint64_t>(v * w0[k]);
      a1 += static_cast<uint64_t>(v * w1[k]);
      a2 += static_cast<uint64_t>(v * w2[k]);
      a3 += static_cast<uint64_t>(v * w3[k]);
    }
    const uint64_t acc[4] = {a0, a1, a2, a3};
    for (int q = 0; q < 4; ++q) layer_epilogue(L, o + q, acc[q], y, residual, wb, limit, extra);
  }
  for (; o < L.out; ++o) {
    const int32_t* wr = w32 + o * n;
    uint64_t acc = 0;
    for (int64_t k = 0; k < n; ++k) acc += static_cast<uint64_t>(int64_t{x[k]} * wr[k]);
    layer_epilogue(L, o, acc, y, residual, wb, limit, extra);
  }
}

inline bool fits32(int64_t v) { return v >= INT32_MIN && v <= INT32_MAX; }

// x as int32 into x32 if every value fits
inline bool narrow(const int64_t* x, int64_t n, int32_t* x32) {
  bool ok = true;
  for (int64_t k = 0; k < n; ++k) {
    ok &= fits32(x[k]);
    x32[k] = static_cast<int32_t>(x[k]);
  }
  return ok;
}

// layer32 where the weights (w32 != nullptr) and this input fit in int32, else layer
inline void any_layer(const LayerDesc& L, const int32_t* w32, const int64_t* x, int32_t* x32,
                      int64_t* y, const int64_t* residual, int wb, int64_t limit,
                      const int64_t* extra = nullptr) {
  if (w32 != nullptr && narrow(x, L.in, x32)) {
    layer32(L, w32, x32, y, residual, wb, limit, extra);
  } else {
    layer(L, x, y, residual, wb, limit, extra);
  }
}

// The first head layer split for a precomputed hyper-feature half: its ctx columns as a
// compact layer (int64 and, where they fit, int32), and psi_head (hidden, H, W) =
// W[:, ctx:] psi, whose entry is added to the accumulator before the rounding shift.
struct PreHead {
  LayerDesc ctx_part;
  const int32_t* w32;
  const int64_t* psi_head;  // nullptr: no split, psi is read as usual
};

void step_positions(const StepDesc& d, const int32_t* const* w32, const PreHead& pre,
                    const int64_t* y_pad, const int64_t* psi, const int64_t* rows,
                    const int64_t* cols, int64_t* out, int64_t begin, int64_t end) {
  const int64_t c = d.channels, n_off = d.n_off, r = d.radius;
  std::vector<int64_t> x0(c * n_off), h(d.ctx + d.hyper), t(d.max_width), g(d.max_width);
  std::vector<int64_t> e(d.max_width);
  std::vector<int32_t> x32(std::max<int64_t>(c * n_off, d.max_width));
  const int64_t plane = d.hp * d.wp, hw = d.h * d.w;
  const int wb = d.weight_bits;
  const int64_t lim = d.act_limit;
  int32_t* xs = x32.data();
  for (int64_t p = begin; p < end; ++p) {
    const int64_t i = rows[p], j = cols[p];
    // receptive-field-only: gather the causal window, channel-major like the weights
    for (int64_t o = 0; o < n_off; ++o) {
      const int64_t base = (i + r + d.offsets[2 * o]) * d.wp + (j + r + d.offsets[2 * o + 1]);
      for (int64_t ch = 0; ch < c; ++ch) x0[ch * n_off + o] = y_pad[ch * plane + base];
    }
    any_layer(d.layers[0], w32[0], x0.data(), xs, h.data(), nullptr, wb, lim);
    int64_t l = 1;
    for (int64_t blk = 0; blk < d.n_blocks; ++blk, l += 2) {
      any_layer(d.layers[l], w32[l], h.data(), xs, t.data(), nullptr, wb, lim);
      any_layer(d.layers[l + 1], w32[l + 1], t.data(), xs, h.data(), h.data(), wb, lim);
    }
    if (pre.psi_head != nullptr) {
      const int64_t hid = d.layers[l].out;
      for (int64_t o = 0; o < hid; ++o) e[o] = pre.psi_head[o * hw + i * d.w + j];
      any_layer(pre.ctx_part, pre.w32, h.data(), xs, t.data(), nullptr, wb, lim, e.data());
    } else {
      for (int64_t ch = 0; ch < d.hyper; ++ch) h[d.ctx + ch] = psi[ch * hw + i * d.w + j];
      any_layer(d.layers[l], w32[l], h.data(), xs, t.data(), nullptr, wb, lim);
    }
    any_layer(d.layers[l + 1], w32[l + 1], t.data(), xs, g.data(), nullptr, wb, lim);
    any_layer(d.layers[l + 2], w32[l + 2], g.data(), xs, out + p * 2 * c, nullptr, wb, lim);
  }
}

}  // namespace

// The step at P positions: (P, 2C) int64; psi_head: an empty tensor, or (hidden, H, W) int64
// = W_head0[:, ctx:] psi, exact (then psi itself is only checked, not read).
at::Tensor step_out(at::Tensor y_pad, at::Tensor psi, const at::Tensor& psi_head,
                    at::Tensor rows, at::Tensor cols, at::Tensor offsets, int64_t kernel,
                    int64_t channels, int64_t n_blocks, const std::vector<at::Tensor>& weights,
                    const std::vector<at::Tensor>& biases,
                    const std::vector<at::Tensor>& slopes, int64_t weight_bits,
                    int64_t act_limit) {
  TORCH_CHECK(y_pad.device().is_cpu(), "context_step_cpu needs CPU tensors");
  const StepDesc d = make_desc(y_pad, psi, rows, cols, offsets, kernel, channels, n_blocks,
                               weights, biases, slopes, weight_bits, act_limit);
  const int64_t n = rows.numel();
  const int64_t* rp = rows.data_ptr<int64_t>();
  const int64_t* cp = cols.data_ptr<int64_t>();
  for (int64_t p = 0; p < n; ++p) {
    TORCH_CHECK(rp[p] >= 0 && rp[p] < d.h && cp[p] >= 0 && cp[p] < d.w, "position (", rp[p],
                ", ", cp[p], ") is outside the ", d.h, " x ", d.w, " latent");
  }
  for (int64_t o = 0; o < d.n_off; ++o) {
    const int64_t di = d.offsets[2 * o], dj = d.offsets[2 * o + 1];
    TORCH_CHECK(di >= -d.radius && di <= 0 && dj >= -d.radius && dj <= d.radius &&
                    (di < 0 || dj < 0), "offset (", di, ", ", dj, ") is not causal");
  }
  at::Tensor out = at::empty({n, 2 * channels}, y_pad.options());
  // work per position in multiply-adds; aim for chunks of ~64k of them per task
  int64_t macs = 0;
  for (int64_t l = 0; l < d.n_layers; ++l) macs += d.layers[l].out * d.layers[l].in;
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, macs));
  // int32 copies of the layers whose weights all fit (nullptr: the int64 layer)
  std::vector<std::vector<int32_t>> w32(d.n_layers);
  std::vector<const int32_t*> w32p(d.n_layers, nullptr);
  for (int64_t l = 0; l < d.n_layers; ++l) {
    const LayerDesc& L = d.layers[l];
    w32[l].resize(L.out * L.in);
    if (narrow(L.w, L.out * L.in, w32[l].data())) w32p[l] = w32[l].data();
  }
  PreHead pre{};
  std::vector<int64_t> ctx_w;
  std::vector<int32_t> ctx_w32;
  if (psi_head.defined() && psi_head.numel() > 0) {
    const LayerDesc& H0 = d.layers[1 + 2 * d.n_blocks];
    check_i64(psi_head, "psi_head", y_pad.device());
    TORCH_CHECK(psi_head.dim() == 3 && psi_head.size(0) == H0.out && psi_head.size(1) == d.h &&
                    psi_head.size(2) == d.w, "psi_head must be (", H0.out, ", ", d.h, ", ",
                d.w, "), got ", psi_head.sizes());
    ctx_w.resize(H0.out * d.ctx);
    for (int64_t o = 0; o < H0.out; ++o) {
      for (int64_t k = 0; k < d.ctx; ++k) ctx_w[o * d.ctx + k] = H0.w[o * H0.in + k];
    }
    pre.ctx_part = H0;
    pre.ctx_part.w = ctx_w.data();
    pre.ctx_part.in = d.ctx;
    ctx_w32.resize(ctx_w.size());
    pre.w32 = narrow(ctx_w.data(), ctx_w.size(), ctx_w32.data()) ? ctx_w32.data() : nullptr;
    pre.psi_head = psi_head.data_ptr<int64_t>();
  }
  const int64_t* yp = y_pad.data_ptr<int64_t>();
  const int64_t* sp = psi.data_ptr<int64_t>();
  int64_t* op = out.data_ptr<int64_t>();
  at::parallel_for(0, n, grain, [&](int64_t begin, int64_t end) {
    step_positions(d, w32p.data(), pre, yp, sp, rp, cp, op, begin, end);
  });
  return out;
}

std::vector<at::Tensor> context_step_cpu(at::Tensor y_pad, at::Tensor psi, at::Tensor rows,
                                         at::Tensor cols, at::Tensor offsets, int64_t kernel,
                                         int64_t channels, int64_t n_blocks,
                                         std::vector<at::Tensor> weights,
                                         std::vector<at::Tensor> biases,
                                         std::vector<at::Tensor> slopes, int64_t weight_bits,
                                         int64_t act_limit) {
  at::Tensor out = step_out(y_pad, psi, at::Tensor(), rows, cols, offsets, kernel, channels,
                            n_blocks, weights, biases, slopes, weight_bits, act_limit);
  return {out.narrow(1, 0, channels), out.narrow(1, channels, channels)};
}

// context_step followed by step.py's discretize_fixed, in one call (the decoder's hot loop
// makes one call per wavefront step): (m, idx), each (P, C) int64 (discretize_mean and
// discretize_index, context_step.h). psi_head: empty, or the precomputed hyper half of the
// first head layer (step.py's hyper_partial), exact either way.
std::vector<at::Tensor> context_params_cpu(at::Tensor y_pad, at::Tensor psi, at::Tensor rows,
                                           at::Tensor cols, at::Tensor offsets, int64_t kernel,
                                           int64_t channels, int64_t n_blocks,
                                           std::vector<at::Tensor> weights,
                                           std::vector<at::Tensor> biases,
                                           std::vector<at::Tensor> slopes, int64_t weight_bits,
                                           int64_t act_limit, int64_t mean_shift,
                                           int64_t offset, int64_t inv_step, int64_t idx_shift,
                                           int64_t levels, at::Tensor psi_head) {
  check_discretize_args(mean_shift, idx_shift, levels);
  at::Tensor out = step_out(y_pad, psi, psi_head, rows, cols, offsets, kernel, channels,
                            n_blocks, weights, biases, slopes, weight_bits, act_limit);
  at::Tensor m = out.narrow(1, 0, channels).contiguous();
  at::Tensor idx = out.narrow(1, channels, channels).contiguous();
  int64_t* mp = m.data_ptr<int64_t>();
  int64_t* ip = idx.data_ptr<int64_t>();
  const int64_t n = m.numel();
  const int ms = static_cast<int>(mean_shift), is = static_cast<int>(idx_shift);
  for (int64_t e = 0; e < n; ++e) {
    mp[e] = discretize_mean(mp[e], ms);
    ip[e] = discretize_index(ip[e], offset, inv_step, is, levels);
  }
  return {m, idx};
}

// The decoder loop's write-back after the symbols k of a step are known (wavefront.py's
// commit_step): at each position p and channel ch
//   y_pad[ch, rows[p] + r, cols[p] + r] = committed_value(m, k, ...)  (context_step.h)
//   k_all[ch, rows[p], cols[p]] = k;  idx_all[ch, rows[p], cols[p]] = idx
void commit_step_cpu(at::Tensor y_pad, at::Tensor k_all, at::Tensor idx_all, at::Tensor rows,
                     at::Tensor cols, at::Tensor m, at::Tensor k, at::Tensor idx,
                     int64_t mean_shift, int64_t delta_num, int64_t delta_shift) {
  TORCH_CHECK(y_pad.device().is_cpu(), "commit_step_cpu needs CPU tensors");
  const CommitDesc d =
      check_commit(y_pad, k_all, idx_all, rows, cols, m, k, idx, mean_shift, delta_shift);
  const int64_t* rp = rows.data_ptr<int64_t>();
  const int64_t* cp = cols.data_ptr<int64_t>();
  for (int64_t p = 0; p < d.n; ++p) {
    TORCH_CHECK(rp[p] >= 0 && rp[p] < d.h && cp[p] >= 0 && cp[p] < d.w, "position (", rp[p],
                ", ", cp[p], ") is outside the ", d.h, " x ", d.w, " latent");
  }
  int64_t* yp = y_pad.data_ptr<int64_t>();
  int64_t* kp = k_all.data_ptr<int64_t>();
  int64_t* ip = idx_all.data_ptr<int64_t>();
  const int64_t* mp = m.data_ptr<int64_t>();
  const int64_t* ks = k.data_ptr<int64_t>();
  const int64_t* is = idx.data_ptr<int64_t>();
  const int64_t c = d.c, plane = (d.h + d.r) * d.wp, hw = d.h * d.w;
  const int ms = static_cast<int>(mean_shift), ds = static_cast<int>(delta_shift);
  for (int64_t p = 0; p < d.n; ++p) {
    const int64_t pad = (rp[p] + d.r) * d.wp + cp[p] + d.r, at = rp[p] * d.w + cp[p];
    for (int64_t ch = 0; ch < c; ++ch) {
      const int64_t e = p * c + ch;
      yp[ch * plane + pad] = committed_value(mp[e], ks[e], ms, delta_num, ds);
      kp[ch * hw + at] = ks[e];
      ip[ch * hw + at] = is[e];
    }
  }
}

}  // namespace plic

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "plic: integer context step (CPU), twin of codec.context.step.context_step";
  m.def("context_step", &plic::context_step_cpu, "integer context step at P positions (CPU)");
  m.def("context_params", &plic::context_params_cpu,
        "integer context step and discretisation at P positions (CPU): (m, idx)");
  m.def("commit_step", &plic::commit_step_cpu,
        "write a decoded step into the window buffer and the symbol/index maps (CPU)");
}
