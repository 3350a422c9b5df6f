// Shared int64 fixed-point arithmetic of the context step (codec/context/intmath.py), for the
// CPU kernel (context_step_cpu.cpp) and the CUDA kernel (context_step_cuda.cu).
//
// Every add and multiply goes through uint64 so it wraps like torch's int64 ops instead of
// being signed-overflow UB; `>>` on int64 is an arithmetic shift (C++20, and GCC/NVCC always),
// as torch's. Integer sums are exact in any order, so no kernel needs the reference's order.
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define PLIC_HD __host__ __device__ __forceinline__
#else
#define PLIC_HD inline
#endif

namespace plic {

constexpr int kMaxLayers = 40;  // 1 masked + 2 per residual block + 3 head layers

PLIC_HD int64_t wadd(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}

PLIC_HD int64_t wmul(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
}

// intmath.rshift_round: round(x / 2**bits), halves up
PLIC_HD int64_t rshift_round(int64_t x, int bits) {
  if (bits == 0) return x;
  return wadd(x, static_cast<int64_t>(1) << (bits - 1)) >> bits;
}

// intmath.clamp_act
PLIC_HD int64_t clamp_act(int64_t x, int64_t limit) {
  return x < -limit ? -limit : (x > limit ? limit : x);
}

// intmath.int_linear's epilogue: (acc = sum(x * w) + b) -> clamp(rshift_round(acc))
PLIC_HD int64_t linear_out(int64_t acc, int weight_bits, int64_t act_limit) {
  return clamp_act(rshift_round(acc, weight_bits), act_limit);
}

// intmath.int_prelu
PLIC_HD int64_t prelu(int64_t x, int64_t slope, int weight_bits) {
  return x >= 0 ? x : rshift_round(wmul(x, slope), weight_bits);
}

// One layer of the step: (out, in) weights, row-major; slope == nullptr: no PReLU;
// residual != nullptr: y = residual + layer(x) (the block's skip, not clamped, as in step.py).
struct LayerDesc {
  const int64_t* w;
  const int64_t* b;
  const int64_t* slope;
  int64_t out;
  int64_t in;
};

// A layer's epilogue at output o, from its accumulated products acc = sum(x * w) (wrapped):
// y[o] = [residual[o] +] act(clamp(rshift_round(acc + b[o] [+ extra[o]]))); extra (nullable):
// a per-output partial sum computed elsewhere (the CPU kernel's precomputed hyper half).
// residual may be y itself (residual[o] is read before y[o] is written).
PLIC_HD void layer_epilogue(const LayerDesc& L, int64_t o, uint64_t acc, int64_t* y,
                            const int64_t* residual, int wb, int64_t limit,
                            const int64_t* extra) {
  int64_t a = wadd(static_cast<int64_t>(acc), L.b[o]);
  if (extra != nullptr) a = wadd(a, extra[o]);
  int64_t v = linear_out(a, wb, limit);
  if (L.slope != nullptr) v = prelu(v, L.slope[o], wb);
  y[o] = residual != nullptr ? wadd(residual[o], v) : v;
}

// step.py's discretize_fixed at one value: the mean's symbol offset and the scale's table index
//   m = rshift_round(mean, mean_shift)
//   idx = clamp(rshift_round((log_scale - offset) * inv_step, idx_shift), 0, levels - 1)
PLIC_HD int64_t discretize_mean(int64_t mean, int mean_shift) {
  return rshift_round(mean, mean_shift);
}

PLIC_HD int64_t discretize_index(int64_t log_scale, int64_t offset, int64_t inv_step,
                                 int idx_shift, int64_t levels) {
  const int64_t v = rshift_round(wmul(wadd(log_scale, wmul(offset, -1)), inv_step), idx_shift);
  return v < 0 ? 0 : (v > levels - 1 ? levels - 1 : v);
}

// wavefront.py's commit_step at one value: (m << mean_shift) + k * delta, with delta =
// num / 2**shift and k * delta = (k * num) << delta_shift or rshift_round(k * num,
// -delta_shift) as delta_shift = ACT_BITS - shift >= 0 or < 0 (step.py's delta_times).
PLIC_HD int64_t committed_value(int64_t m, int64_t k, int mean_shift, int64_t delta_num,
                                int delta_shift) {
  const int64_t kd = wmul(k, delta_num);
  const int64_t step = delta_shift >= 0
      ? static_cast<int64_t>(static_cast<uint64_t>(kd) << delta_shift)
      : rshift_round(kd, -delta_shift);
  return wadd(static_cast<int64_t>(static_cast<uint64_t>(m) << mean_shift), step);
}

// Everything a kernel needs, by value (fits a CUDA kernel's parameter space).
struct StepDesc {
  LayerDesc layers[kMaxLayers];
  int64_t n_layers;
  int64_t n_blocks;
  int64_t channels;     // C
  int64_t hyper;        // channels of psi
  int64_t ctx;          // width D of the masked layer and the blocks
  int64_t n_off;        // causal taps
  int64_t radius;       // r = kernel // 2
  int64_t hp, wp;       // padded latent: H + r, W + 2r
  int64_t h, w;         // latent
  int weight_bits;
  int64_t act_limit;
  int64_t max_width;    // widest activation vector (for scratch buffers)
  const int64_t* offsets;  // (n_off, 2): (di, dj)
};

}  // namespace plic
