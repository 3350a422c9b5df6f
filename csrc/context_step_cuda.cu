// CUDA kernel of the integer context step: codec.context.step.context_step with
// IntStepWeights, bit for bit; the same three entry points as the CPU kernel (context_step,
// context_params = step + discretisation, commit_step). One thread block per position; each
// warp computes whole output channels (lanes stride the inputs, coalesced weight rows, then a
// shuffle reduction; integer sums are exact in any order). The activations live in shared memory. Light c10 headers
// only: ATen/cuda/CUDAContext.h needs the cuSPARSE/cuBLAS headers, not always installed.
// Twin and parity test: codec/context/step.py, tests/codec/context/test_kernels_cuda.py (marked gpu).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/csrc/utils/pybind.h>

#include <vector>

#include "context_step.h"
#include "context_step_host.h"

namespace plic {
namespace {

constexpr int kThreads = 256;

// y[o] = [residual[o] +] act(clamp(rshift_round(W x + b)))[o], by the whole block
__device__ void block_layer(const LayerDesc& L, const int64_t* x, int64_t* y,
                            const int64_t* residual, int wb, int64_t limit) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  for (int64_t o = warp; o < L.out; o += n_warps) {
    const int64_t* wr = L.w + o * L.in;
    unsigned long long acc = 0;
    for (int64_t k = lane; k < L.in; k += 32) {
      acc += static_cast<unsigned long long>(x[k]) * static_cast<unsigned long long>(wr[k]);
    }
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
    if (lane == 0) layer_epilogue(L, o, acc, y, residual, wb, limit, nullptr);
  }
  __syncthreads();
}

__global__ void context_step_kernel(const StepDesc d, const int64_t* __restrict__ y_pad,
                                    const int64_t* __restrict__ psi,
                                    const int64_t* __restrict__ rows,
                                    const int64_t* __restrict__ cols, int64_t* __restrict__ out) {
  extern __shared__ int64_t smem[];
  const int64_t c = d.channels, n_off = d.n_off, r = d.radius;
  int64_t* x0 = smem;                    // c * n_off
  int64_t* h = x0 + c * n_off;           // ctx + hyper
  int64_t* t = h + d.ctx + d.hyper;      // max_width
  int64_t* g = t + d.max_width;          // max_width
  const int64_t p = blockIdx.x;
  const int64_t i = rows[p], j = cols[p];
  const int64_t plane = d.hp * d.wp, hw = d.h * d.w;
  const int wb = d.weight_bits;
  const int64_t lim = d.act_limit;
  for (int64_t e = threadIdx.x; e < c * n_off; e += blockDim.x) {
    const int64_t ch = e / n_off, o = e % n_off;
    x0[e] = y_pad[ch * plane + (i + r + d.offsets[2 * o]) * d.wp + (j + r + d.offsets[2 * o + 1])];
  }
  for (int64_t ch = threadIdx.x; ch < d.hyper; ch += blockDim.x) {
    h[d.ctx + ch] = psi[ch * hw + i * d.w + j];
  }
  __syncthreads();
  block_layer(d.layers[0], x0, h, nullptr, wb, lim);
  int64_t l = 1;
  for (int64_t blk = 0; blk < d.n_blocks; ++blk, l += 2) {
    block_layer(d.layers[l], h, t, nullptr, wb, lim);
    block_layer(d.layers[l + 1], t, h, h, wb, lim);
  }
  block_layer(d.layers[l], h, t, nullptr, wb, lim);
  block_layer(d.layers[l + 1], t, g, nullptr, wb, lim);
  block_layer(d.layers[l + 2], g, out + p * 2 * c, nullptr, wb, lim);
}

// step.py's discretize_fixed over the step's (P, 2C) output: one thread per (position, channel)
__global__ void discretize_kernel(const int64_t* __restrict__ out, int64_t n, int64_t c,
                                  int64_t* __restrict__ m, int64_t* __restrict__ idx,
                                  int mean_shift, int64_t offset, int64_t inv_step,
                                  int idx_shift, int64_t levels) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= n * c) return;
  const int64_t p = e / c, ch = e % c;
  m[e] = discretize_mean(out[p * 2 * c + ch], mean_shift);
  idx[e] = discretize_index(out[p * 2 * c + c + ch], offset, inv_step, idx_shift, levels);
}

// wavefront.py's commit_step: one thread per (position, channel)
__global__ void commit_kernel(const CommitDesc d, int64_t* __restrict__ y_pad,
                              int64_t* __restrict__ k_all, int64_t* __restrict__ idx_all,
                              const int64_t* __restrict__ rows, const int64_t* __restrict__ cols,
                              const int64_t* __restrict__ m, const int64_t* __restrict__ k,
                              const int64_t* __restrict__ idx, int mean_shift,
                              int64_t delta_num, int delta_shift) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= d.n * d.c) return;
  const int64_t p = e / d.c, ch = e % d.c;
  const int64_t pad = (rows[p] + d.r) * d.wp + cols[p] + d.r, at = rows[p] * d.w + cols[p];
  y_pad[ch * (d.h + d.r) * d.wp + pad] = committed_value(m[e], k[e], mean_shift, delta_num,
                                                         delta_shift);
  k_all[ch * d.h * d.w + at] = k[e];
  idx_all[ch * d.h * d.w + at] = idx[e];
}

inline unsigned blocks_for(int64_t n) {
  return static_cast<unsigned>((n + kThreads - 1) / kThreads);
}

}  // namespace

// The step at P positions: (P, 2C) int64 on the tensors' GPU.
at::Tensor step_out_cuda(const at::Tensor& y_pad, const at::Tensor& psi, const at::Tensor& rows,
                         const at::Tensor& cols, const at::Tensor& offsets, int64_t kernel,
                         int64_t channels, int64_t n_blocks,
                         const std::vector<at::Tensor>& weights,
                         const std::vector<at::Tensor>& biases,
                         const std::vector<at::Tensor>& slopes, int64_t weight_bits,
                         int64_t act_limit) {
  TORCH_CHECK(y_pad.is_cuda(), "context_step_cuda needs CUDA tensors");
  const c10::cuda::CUDAGuard guard(y_pad.device());
  const StepDesc d = make_desc(y_pad, psi, rows, cols, offsets, kernel, channels, n_blocks,
                               weights, biases, slopes, weight_bits, act_limit);
  const int64_t n = rows.numel();
  at::Tensor out = at::empty({n, 2 * channels}, y_pad.options());
  if (n > 0) {
    // positions are not range-checked on the device (that would cost a sync per step): the
    // caller (codec.context.kernels) passes schedules it built
    const size_t smem = sizeof(int64_t) *
        static_cast<size_t>(channels * d.n_off + d.ctx + d.hyper + 2 * d.max_width);
    auto fn = context_step_kernel;
    if (smem > 48 * 1024) {
      C10_CUDA_CHECK(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(smem)));
    }
    context_step_kernel<<<static_cast<unsigned>(n), kThreads, smem,
                          c10::cuda::getCurrentCUDAStream()>>>(
        d, y_pad.data_ptr<int64_t>(), psi.data_ptr<int64_t>(), rows.data_ptr<int64_t>(),
        cols.data_ptr<int64_t>(), out.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return out;
}

std::vector<at::Tensor> context_step_cuda(at::Tensor y_pad, at::Tensor psi, at::Tensor rows,
                                          at::Tensor cols, at::Tensor offsets, int64_t kernel,
                                          int64_t channels, int64_t n_blocks,
                                          std::vector<at::Tensor> weights,
                                          std::vector<at::Tensor> biases,
                                          std::vector<at::Tensor> slopes, int64_t weight_bits,
                                          int64_t act_limit) {
  at::Tensor out = step_out_cuda(y_pad, psi, rows, cols, offsets, kernel, channels, n_blocks,
                                 weights, biases, slopes, weight_bits, act_limit);
  return {out.narrow(1, 0, channels), out.narrow(1, channels, channels)};
}

// context_step followed by step.py's discretize_fixed, the CPU kernel's context_params with the
// same arguments: (m, idx), each (P, C) int64. psi_head (the CPU kernel's precomputed hyper half
// of the first head layer) is not needed here: a block reads psi itself, the same integers.
std::vector<at::Tensor> context_params_cuda(at::Tensor y_pad, at::Tensor psi, at::Tensor rows,
                                            at::Tensor cols, at::Tensor offsets, int64_t kernel,
                                            int64_t channels, int64_t n_blocks,
                                            std::vector<at::Tensor> weights,
                                            std::vector<at::Tensor> biases,
                                            std::vector<at::Tensor> slopes, int64_t weight_bits,
                                            int64_t act_limit, int64_t mean_shift,
                                            int64_t offset, int64_t inv_step, int64_t idx_shift,
                                            int64_t levels, at::Tensor psi_head) {
  (void)psi_head;
  TORCH_CHECK(y_pad.is_cuda(), "context_params_cuda needs CUDA tensors");
  check_discretize_args(mean_shift, idx_shift, levels);
  const c10::cuda::CUDAGuard guard(y_pad.device());
  at::Tensor out = step_out_cuda(y_pad, psi, rows, cols, offsets, kernel, channels, n_blocks,
                                 weights, biases, slopes, weight_bits, act_limit);
  const int64_t n = rows.numel();
  at::Tensor m = at::empty({n, channels}, out.options());
  at::Tensor idx = at::empty({n, channels}, out.options());
  if (n * channels > 0) {
    discretize_kernel<<<blocks_for(n * channels), kThreads, 0,
                        c10::cuda::getCurrentCUDAStream()>>>(
        out.data_ptr<int64_t>(), n, channels, m.data_ptr<int64_t>(), idx.data_ptr<int64_t>(),
        static_cast<int>(mean_shift), offset, inv_step, static_cast<int>(idx_shift), levels);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return {m, idx};
}

// The decoder loop's write-back (the CPU kernel's commit_step; positions are not range-checked
// on the device, as in context_step).
void commit_step_cuda(at::Tensor y_pad, at::Tensor k_all, at::Tensor idx_all, at::Tensor rows,
                      at::Tensor cols, at::Tensor m, at::Tensor k, at::Tensor idx,
                      int64_t mean_shift, int64_t delta_num, int64_t delta_shift) {
  TORCH_CHECK(y_pad.is_cuda(), "commit_step_cuda needs CUDA tensors");
  const c10::cuda::CUDAGuard guard(y_pad.device());
  const CommitDesc d =
      check_commit(y_pad, k_all, idx_all, rows, cols, m, k, idx, mean_shift, delta_shift);
  if (d.n * d.c > 0) {
    commit_kernel<<<blocks_for(d.n * d.c), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        d, y_pad.data_ptr<int64_t>(), k_all.data_ptr<int64_t>(), idx_all.data_ptr<int64_t>(),
        rows.data_ptr<int64_t>(), cols.data_ptr<int64_t>(), m.data_ptr<int64_t>(),
        k.data_ptr<int64_t>(), idx.data_ptr<int64_t>(), static_cast<int>(mean_shift), delta_num,
        static_cast<int>(delta_shift));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

}  // namespace plic

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "plic: integer context step (CUDA), twin of codec.context.step.context_step";
  m.def("context_step", &plic::context_step_cuda, "integer context step at P positions (CUDA)");
  m.def("context_params", &plic::context_params_cuda,
        "integer context step and discretisation at P positions (CUDA): (m, idx)");
  m.def("commit_step", &plic::commit_step_cuda,
        "write a decoded step into the window buffer and the symbol/index maps (CUDA)");
}
