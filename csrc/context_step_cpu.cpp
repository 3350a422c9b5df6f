// C++ CPU kernel of the integer context step: codec.context.step.context_step with
// IntStepWeights, bit for bit, parallel over positions (at::parallel_for).
// Twin and parity test: codec/context/step.py, tests/test_kernels.py.
// light headers (not torch/extension.h): the JIT build takes a fraction of the time
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/csrc/utils/pybind.h>

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

// y = [residual +] act(clamp(rshift_round(W x + b))); four output rows at a time, so each
// input is loaded once per four multiply-adds
PLIC_CLONES void layer(const LayerDesc& L, const int64_t* __restrict__ x, int64_t* y,
                       const int64_t* residual, int wb, int64_t limit) {
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
    for (int q = 0; q < 4; ++q) {
      int64_t v = linear_out(wadd(static_cast<int64_t>(acc[q]), L.b[o + q]), wb, limit);
      if (L.slope != nullptr) v = prelu(v, L.slope[o + q], wb);
      y[o + q] = residual != nullptr ? wadd(residual[o + q], v) : v;
    }
  }
  for (; o < L.out; ++o) {
    const uint64_t* wr = reinterpret_cast<const uint64_t*>(L.w + o * n);
    uint64_t acc = 0;
    for (int64_t k = 0; k < n; ++k) acc += xu[k] * wr[k];
    int64_t v = linear_out(wadd(static_cast<int64_t>(acc), L.b[o]), wb, limit);
    if (L.slope != nullptr) v = prelu(v, L.slope[o], wb);
    y[o] = residual != nullptr ? wadd(residual[o], v) : v;
  }
}

void step_positions(const StepDesc& d, const int64_t* y_pad, const int64_t* psi,
                    const int64_t* rows, const int64_t* cols, int64_t* out, int64_t begin,
                    int64_t end) {
  const int64_t c = d.channels, n_off = d.n_off, r = d.radius;
  std::vector<int64_t> x0(c * n_off), h(d.ctx + d.hyper), t(d.max_width), g(d.max_width);
  const int64_t plane = d.hp * d.wp, hw = d.h * d.w;
  const int wb = d.weight_bits;
  const int64_t lim = d.act_limit;
  for (int64_t p = begin; p < end; ++p) {
    const int64_t i = rows[p], j = cols[p];
    // receptive-field-only: gather the causal window, channel-major like the weights
    for (int64_t o = 0; o < n_off; ++o) {
      const int64_t base = (i + r + d.offsets[2 * o]) * d.wp + (j + r + d.offsets[2 * o + 1]);
      for (int64_t ch = 0; ch < c; ++ch) x0[ch * n_off + o] = y_pad[ch * plane + base];
    }
    layer(d.layers[0], x0.data(), h.data(), nullptr, wb, lim);
    int64_t l = 1;
    for (int64_t blk = 0; blk < d.n_blocks; ++blk, l += 2) {
      layer(d.layers[l], h.data(), t.data(), nullptr, wb, lim);
      layer(d.layers[l + 1], t.data(), h.data(), h.data(), wb, lim);
    }
    for (int64_t ch = 0; ch < d.hyper; ++ch) h[d.ctx + ch] = psi[ch * hw + i * d.w + j];
    layer(d.layers[l], h.data(), t.data(), nullptr, wb, lim);
    layer(d.layers[l + 1], t.data(), g.data(), nullptr, wb, lim);
    layer(d.layers[l + 2], g.data(), out + p * 2 * c, nullptr, wb, lim);
  }
}

}  // namespace

std::vector<at::Tensor> context_step_cpu(at::Tensor y_pad, at::Tensor psi, at::Tensor rows,
                                         at::Tensor cols, at::Tensor offsets, int64_t kernel,
                                         int64_t channels, int64_t n_blocks,
                                         std::vector<at::Tensor> weights,
                                         std::vector<at::Tensor> biases,
                                         std::vector<at::Tensor> slopes, int64_t weight_bits,
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
  const int64_t* yp = y_pad.data_ptr<int64_t>();
  const int64_t* sp = psi.data_ptr<int64_t>();
  int64_t* op = out.data_ptr<int64_t>();
  at::parallel_for(0, n, grain, [&](int64_t begin, int64_t end) {
    step_positions(d, yp, sp, rp, cp, op, begin, end);
  });
  return {out.narrow(1, 0, channels), out.narrow(1, channels, channels)};
}

// context_step followed by step.py's discretize_fixed, in one call (the decoder's hot loop
// makes one call per wavefront step): (m, idx), each (P, C) int64.
//   m = rshift_round(means, mean_shift)
//   idx = clamp(rshift_round((log_scales - offset) * inv_step, idx_shift), 0, levels - 1)
std::vector<at::Tensor> context_params_cpu(at::Tensor y_pad, at::Tensor psi, at::Tensor rows,
                                           at::Tensor cols, at::Tensor offsets, int64_t kernel,
                                           int64_t channels, int64_t n_blocks,
                                           std::vector<at::Tensor> weights,
                                           std::vector<at::Tensor> biases,
                                           std::vector<at::Tensor> slopes, int64_t weight_bits,
                                           int64_t act_limit, int64_t mean_shift,
                                           int64_t offset, int64_t inv_step, int64_t idx_shift,
                                           int64_t levels) {
  TORCH_CHECK(mean_shift >= 0 && mean_shift < 63 && idx_shift >= 0 && idx_shift < 63,
              "shifts must be in 0..62");
  TORCH_CHECK(levels >= 1, "levels must be positive");
  std::vector<at::Tensor> out = context_step_cpu(y_pad, psi, rows, cols, offsets, kernel,
                                                 channels, n_blocks, weights, biases, slopes,
                                                 weight_bits, act_limit);
  at::Tensor m = out[0].contiguous(), idx = out[1].contiguous();
  int64_t* mp = m.data_ptr<int64_t>();
  int64_t* ip = idx.data_ptr<int64_t>();
  const int64_t n = m.numel(), neg = -offset;
  const int ms = static_cast<int>(mean_shift), is = static_cast<int>(idx_shift);
  for (int64_t e = 0; e < n; ++e) {
    mp[e] = rshift_round(mp[e], ms);
    const int64_t v = rshift_round(wmul(wadd(ip[e], neg), inv_step), is);
    ip[e] = v < 0 ? 0 : (v > levels - 1 ? levels - 1 : v);
  }
  return {m, idx};
}

}  // namespace plic

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "plic: integer context step (CPU), twin of codec.context.step.context_step";
  m.def("context_step", &plic::context_step_cpu, "integer context step at P positions (CPU)");
  m.def("context_params", &plic::context_params_cpu,
        "integer context step and discretisation at P positions (CPU): (m, idx)");
}
