// CUDA kernel of the integer context step: codec.context.step.context_step with
// IntStepWeights, bit for bit. One thread block per position; each warp computes whole output
// channels (lanes stride the inputs, coalesced weight rows, then a shuffle reduction; integer
// sums are exact in any order). The activations live in shared memory. Light c10 headers
// only: ATen/cuda/CUDAContext.h needs the cuSPARSE/cuBLAS headers, not always installed.
// Twin and parity test: codec/context/step.py, tests/test_kernels.py (marked gpu).
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
    if (lane == 0) {
      int64_t v = linear_out(wadd(static_cast<int64_t>(acc), L.b[o]), wb, limit);
      if (L.slope != nullptr) v = prelu(v, L.slope[o], wb);
      y[o] = residual != nullptr ? wadd(residual[o], v) : v;
    }
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

}  // namespace

std::vector<at::Tensor> context_step_cuda(at::Tensor y_pad, at::Tensor psi, at::Tensor rows,
                                          at::Tensor cols, at::Tensor offsets, int64_t kernel,
                                          int64_t channels, int64_t n_blocks,
                                          std::vector<at::Tensor> weights,
                                          std::vector<at::Tensor> biases,
                                          std::vector<at::Tensor> slopes, int64_t weight_bits,
                                          int64_t act_limit) {
  TORCH_CHECK(y_pad.is_cuda(), "context_step_cuda needs CUDA tensors");
  const c10::cuda::CUDAGuard guard(y_pad.device());
  const StepDesc d = make_desc(y_pad, psi, rows, cols, offsets, kernel, channels, n_blocks,
                               weights, biases, slopes, weight_bits, act_limit);
  const int64_t n = rows.numel();
  at::Tensor out = at::empty({n, 2 * channels}, y_pad.options());
  if (n > 0) {
    // positions are not range-checked on the device (that would cost a sync per step): the
    // caller (codec.kernels) passes schedules it built
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
  return {out.narrow(1, 0, channels), out.narrow(1, channels, channels)};
}

}  // namespace plic

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "plic: integer context step (CUDA), twin of codec.context.step.context_step";
  m.def("context_step", &plic::context_step_cuda, "integer context step at P positions (CUDA)");
}
