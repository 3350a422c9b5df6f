// Host side shared by the CPU and CUDA extensions: checks the tensors the Python dispatcher
// (codec/context/kernels.py) passes and fills a StepDesc. The layer order is step.py's context_step:
// masked layer + PReLU; per residual block 1x1 + PReLU, 1x1 (+ skip); concat psi;
// 1x1 + PReLU, 1x1 + PReLU, 1x1 -> (means, log_scales).
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <vector>

#include "context_step.h"

namespace plic {

inline void check_i64(const at::Tensor& t, const char* what, const c10::Device& dev) {
  TORCH_CHECK(t.scalar_type() == at::kLong, what, " must be int64, got ", t.scalar_type());
  TORCH_CHECK(t.device() == dev, what, " is on ", t.device(), ", expected ", dev);
  TORCH_CHECK(t.is_contiguous(), what, " must be contiguous");
}

inline StepDesc make_desc(const at::Tensor& y_pad, const at::Tensor& psi, const at::Tensor& rows,
                          const at::Tensor& cols, const at::Tensor& offsets, int64_t kernel,
                          int64_t channels, int64_t n_blocks,
                          const std::vector<at::Tensor>& weights,
                          const std::vector<at::Tensor>& biases,
                          const std::vector<at::Tensor>& slopes, int64_t weight_bits,
                          int64_t act_limit) {
  const auto dev = y_pad.device();
  check_i64(y_pad, "y_hat_pad", dev);
  check_i64(psi, "psi", dev);
  check_i64(rows, "rows", dev);
  check_i64(cols, "cols", dev);
  check_i64(offsets, "offsets", dev);
  TORCH_CHECK(y_pad.dim() == 3 && psi.dim() == 3, "y_hat_pad and psi must be (C, H, W)");
  TORCH_CHECK(rows.dim() == 1 && cols.dim() == 1 && rows.numel() == cols.numel(),
              "rows and cols must be (P,) of the same length");
  const int64_t r = kernel / 2;
  StepDesc d{};
  d.channels = channels;
  d.radius = r;
  d.hp = y_pad.size(1);
  d.wp = y_pad.size(2);
  d.h = d.hp - r;
  d.w = d.wp - 2 * r;
  d.hyper = psi.size(0);
  d.n_off = offsets.size(0);
  d.n_blocks = n_blocks;
  d.weight_bits = static_cast<int>(weight_bits);
  d.act_limit = act_limit;
  d.offsets = offsets.data_ptr<int64_t>();
  TORCH_CHECK(y_pad.size(0) == channels, "y_hat_pad has ", y_pad.size(0), " channels, not ",
              channels);
  TORCH_CHECK(psi.size(1) == d.h && psi.size(2) == d.w, "psi is ", psi.sizes(),
              ", the latent is ", d.h, " x ", d.w);
  TORCH_CHECK(offsets.dim() == 2 && offsets.size(1) == 2, "offsets must be (n_off, 2)");
  const int64_t n_layers = 1 + 2 * n_blocks + 3;
  TORCH_CHECK(n_layers <= kMaxLayers, "at most ", (kMaxLayers - 4) / 2, " residual blocks");
  TORCH_CHECK(static_cast<int64_t>(weights.size()) == n_layers &&
                  static_cast<int64_t>(biases.size()) == n_layers,
              "expected ", n_layers, " layers, got ", weights.size());
  TORCH_CHECK(static_cast<int64_t>(slopes.size()) == n_blocks + 3, "expected ", n_blocks + 3,
              " PReLU slopes, got ", slopes.size());
  d.n_layers = n_layers;
  d.ctx = weights[0].size(0);
  // expected input width of each layer, and which layers have a PReLU
  int64_t si = 0, max_w = 0;
  for (int64_t l = 0; l < n_layers; ++l) {
    const at::Tensor& w = weights[l];
    const at::Tensor& b = biases[l];
    check_i64(w, "a weight", dev);
    check_i64(b, "a bias", dev);
    TORCH_CHECK(w.dim() == 2 && b.dim() == 1 && b.size(0) == w.size(0), "layer ", l,
                ": weight must be (O, K) and bias (O,)");
    int64_t in;
    bool act;
    if (l == 0) {
      in = channels * d.n_off;
      act = true;
    } else if (l <= 2 * n_blocks) {
      in = d.ctx;
      act = (l % 2 == 1);
      TORCH_CHECK(w.size(0) == d.ctx, "residual layer ", l, " must keep the width ", d.ctx);
    } else if (l == 2 * n_blocks + 1) {
      in = d.ctx + d.hyper;
      act = true;
    } else {
      in = weights[l - 1].size(0);
      act = (l < n_layers - 1);
    }
    TORCH_CHECK(w.size(1) == in, "layer ", l, " takes ", w.size(1), " inputs, expected ", in);
    LayerDesc& L = d.layers[l];
    L.w = w.data_ptr<int64_t>();
    L.b = b.data_ptr<int64_t>();
    L.out = w.size(0);
    L.in = in;
    L.slope = nullptr;
    if (act) {
      const at::Tensor& s = slopes[si++];
      check_i64(s, "a PReLU slope", dev);
      TORCH_CHECK(s.numel() == L.out, "layer ", l, ": ", s.numel(), " slopes for ", L.out,
                  " channels");
      L.slope = s.data_ptr<int64_t>();
    }
    max_w = std::max(max_w, std::max(L.out, in));
  }
  TORCH_CHECK(d.layers[n_layers - 1].out == 2 * channels, "the head must give 2C outputs");
  d.max_width = max_w;
  return d;
}

// context_params' discretisation arguments
inline void check_discretize_args(int64_t mean_shift, int64_t idx_shift, int64_t levels) {
  TORCH_CHECK(mean_shift >= 0 && mean_shift < 63 && idx_shift >= 0 && idx_shift < 63,
              "shifts must be in 0..62");
  TORCH_CHECK(levels >= 1, "levels must be positive");
}

// commit_step's buffers: y_pad (C, H + r, W + 2r), k_all and idx_all (C, H, W), rows and cols
// (P,), m, k, idx (P, C), all int64 on one device
struct CommitDesc {
  int64_t c, h, w, r, n, wp;
};

inline CommitDesc check_commit(const at::Tensor& y_pad, const at::Tensor& k_all,
                               const at::Tensor& idx_all, const at::Tensor& rows,
                               const at::Tensor& cols, const at::Tensor& m, const at::Tensor& k,
                               const at::Tensor& idx, int64_t mean_shift, int64_t delta_shift) {
  const auto dev = y_pad.device();
  for (const at::Tensor* t : {&y_pad, &k_all, &idx_all, &rows, &cols, &m, &k, &idx}) {
    check_i64(*t, "commit_step's tensors", dev);
  }
  CommitDesc d{k_all.size(0), k_all.size(1), k_all.size(2), 0, rows.numel(), y_pad.size(2)};
  d.r = (y_pad.size(2) - d.w) / 2;
  TORCH_CHECK(y_pad.size(0) == d.c && y_pad.size(1) == d.h + d.r &&
                  idx_all.sizes() == k_all.sizes(),
              "y_pad must be (C, H + r, W + 2r) and idx_all like k_all (C, H, W)");
  TORCH_CHECK(cols.numel() == d.n && m.numel() == d.n * d.c && k.numel() == d.n * d.c &&
                  idx.numel() == d.n * d.c, "rows, cols: (P,); m, k, idx: (P, C)");
  TORCH_CHECK(mean_shift >= 0 && mean_shift < 64 && delta_shift > -64 && delta_shift < 64,
              "shifts out of range");
  return d;
}

}  // namespace plic
