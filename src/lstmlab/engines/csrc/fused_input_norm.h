// The layer-normalised cell's input share, and its gradients that are sums over rows.
//
//   input share = LN(u) * g_ih + b,   u = x W_ih^T  (one GEMM for all steps, by the caller)
//
// Forward: one pass over the rows of u (T*B, 4H), normalising each in place to u_hat (kept
// for the backward); the loops read u_hat and add the gain and bias themselves. Backward,
// after the time loop: one pass over the rows of dz that gives dL/du for the dX and dW_ih
// GEMMs and, in the same pass, every layer-norm gradient that is a sum over rows (g_ih, b,
// g_hh, g_c, b_c). Without these passes the same work took separate torch ops, each a trip
// over a (T, B, 4H) tensor freshly mapped from the OS.
#pragma once

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "fused_buffers.h"
#include "fused_layer_norm.h"

namespace lstmlab_fused {

// u (N, 4H) -> u_hat in place; returns rstd (N). The loops add u_hat * g_ih + b themselves
// (activate_row_ln), so no (N, 4H) x_gates is written and read back. Coupled: the f slice
// is left out of the moments and is 0.
inline torch::Tensor input_layer_norm(torch::Tensor u, bool coupled) {
  TORCH_CHECK(u.dim() == 2 && u.is_contiguous() && u.size(1) % 4 == 0,
              "input_layer_norm: u must be a contiguous (N, 4H) tensor, got sizes ", u.sizes());
  const int64_t rows = u.size(0), width = u.size(1), hidden = width / 4;
  auto rstd = torch::empty({rows}, u.options());
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "input_layer_norm", [&] {
    scalar_t* u_ptr = u.data_ptr<scalar_t>();
    scalar_t* rstd_ptr = rstd.data_ptr<scalar_t>();
    dispatch_variant(false, coupled, [&](auto, auto coupled_flag) {
      constexpr bool Coupled = decltype(coupled_flag)::value;
      at::parallel_for(0, rows, grain(hidden), [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; ++n)
          rstd_ptr[n] = normalize_recurrent<scalar_t, Coupled>(u_ptr + n * width, hidden);
      });
    });
  });
  return rstd;
}

// Sums over rows, one slot per thread of the team (accumulated in double: float32 sums of
// T*B terms would otherwise lose digits that torch's cascade sums keep). Callers add
// blocks of at most kSumRows rows in scalar_t first.
constexpr int64_t kSumRows = 32;
struct RowSums {
  std::vector<double> slots;
  int64_t width;
  RowSums(int64_t width) : slots(static_cast<size_t>(at::get_num_threads()) * width, 0.0), width(width) {}
  double* mine() { return slots.data() + at::get_thread_num() * width; }
  // The total of every thread's slot, columns [begin, begin + count), as a tensor like `like`.
  torch::Tensor total(int64_t begin, int64_t count, const torch::Tensor& like) const {
    auto sum = torch::zeros({count}, torch::kFloat64);
    double* out = sum.data_ptr<double>();
    for (size_t slot = 0; slot < slots.size(); slot += width)
      for (int64_t j = 0; j < count; ++j) out[j] += slots[slot + begin + j];
    return sum.to(like.scalar_type());
  }
};

// sum[j] += a[j] * b[j] and sum[j] += a[j], j < n (__restrict: the sums are scalar_t
// like the rows, and GCC vectorises only what it knows does not overlap).
template <typename scalar_t>
inline void add_products(scalar_t* __restrict sum, const scalar_t* __restrict a, const scalar_t* __restrict b,
                         int64_t n) {
  for (int64_t j = 0; j < n; ++j) sum[j] += a[j] * b[j];
}
template <typename scalar_t>
inline void add_values(scalar_t* __restrict sum, const scalar_t* __restrict a, int64_t n) {
  for (int64_t j = 0; j < n; ++j) sum[j] += a[j];
}

// After the layer-norm backward loop. In: dz (N, 4H) = dL/dz; u_hat, rstd_u from
// `input_layer_norm`; g_ih (4H); r_hat (N, 4H), the recurrent share's normalised value;
// d_cell_ln (N, H) = dL/d(LN(c) g_c + b_c) and c_hat (N, H).
// Returns {du (N, 4H) = dL/du, d_g_ih, d_bias (4H), d_g_hh (4H), d_g_c, d_b_c (H)}.
inline std::vector<torch::Tensor> layer_norm_gradients(const torch::Tensor& dz, const torch::Tensor& u_hat,
                                                       const torch::Tensor& rstd_u, const torch::Tensor& g_ih,
                                                       const torch::Tensor& r_hat, const torch::Tensor& d_cell_ln,
                                                       const torch::Tensor& c_hat, bool coupled) {
  const int64_t width = dz.size(-1), hidden = width / 4, rows = dz.numel() / std::max<int64_t>(width, 1);
  for (const auto* t : {&dz, &u_hat, &r_hat})
    TORCH_CHECK(t->is_contiguous() && t->numel() == rows * width, "layer_norm_gradients: expected contiguous (N, ",
                width, ") tensors, got sizes ", t->sizes());
  for (const auto* t : {&d_cell_ln, &c_hat})
    TORCH_CHECK(t->is_contiguous() && t->numel() == rows * hidden, "layer_norm_gradients: expected contiguous (N, ",
                hidden, ") tensors, got sizes ", t->sizes());
  TORCH_CHECK(rstd_u.numel() == rows && g_ih.numel() == width, "layer_norm_gradients: rstd_u (N) and g_ih (4H)");
  auto du = pooled_empty({rows, width}, dz.options());
  // Columns of the sums: g_ih | bias | g_hh (4H each), then g_c | b_c (H each).
  RowSums sums(3 * width + 2 * hidden);
  AT_DISPATCH_FLOATING_TYPES(dz.scalar_type(), "layer_norm_gradients", [&] {
    const scalar_t* dz_ptr = dz.data_ptr<scalar_t>();
    const scalar_t* u_ptr = u_hat.data_ptr<scalar_t>();
    const scalar_t* rstd = rstd_u.data_ptr<scalar_t>();
    const scalar_t* g = g_ih.data_ptr<scalar_t>();
    const scalar_t* r_ptr = r_hat.data_ptr<scalar_t>();
    const scalar_t* dcl_ptr = d_cell_ln.data_ptr<scalar_t>();
    const scalar_t* ch_ptr = c_hat.data_ptr<scalar_t>();
    scalar_t* du_ptr = du.data_ptr<scalar_t>();
    dispatch_variant(false, coupled, [&](auto, auto coupled_flag) {
      constexpr bool Coupled = decltype(coupled_flag)::value;
      at::parallel_for(0, rows, grain(hidden), [&](int64_t begin, int64_t end) {
        // Each block of kSumRows rows sums into scalar_t partials first, then into the
        // thread's double slot: a float32 sum of <= 32 terms keeps its digits, and the
        // inner loops stay in float32 vectors (in double, with a conversion per number,
        // this pass took ~1.2 ms of a (100, 32, 64, 128) layer-norm training call).
        std::vector<scalar_t> partial(3 * width + 2 * hidden);
        scalar_t *d_g_ih = partial.data(), *d_bias = d_g_ih + width, *d_g_hh = d_g_ih + 2 * width;
        scalar_t *d_g_c = d_g_ih + 3 * width, *d_b_c = d_g_c + hidden;
        double* acc = sums.mine();
        for (int64_t block = begin; block < end; block += kSumRows) {
          std::fill(partial.begin(), partial.end(), scalar_t(0));
          for (int64_t n = block; n < std::min(end, block + kSumRows); ++n) {
            const scalar_t* dz_row = dz_ptr + n * width;
            const scalar_t* u_row = u_ptr + n * width;
            const scalar_t* r_row = r_ptr + n * width;
            normalize_backward<scalar_t, Coupled>(dz_row, u_row, g, rstd[n], du_ptr + n * width, hidden);
            add_products(d_g_ih, dz_row, u_row, width);
            add_products(d_g_hh, dz_row, r_row, width);
            add_values(d_bias, dz_row, width);
            add_products(d_g_c, dcl_ptr + n * hidden, ch_ptr + n * hidden, hidden);
            add_values(d_b_c, dcl_ptr + n * hidden, hidden);
          }
          for (size_t j = 0; j < partial.size(); ++j) acc[j] += double(partial[j]);
        }
      });
    });
  });
  return {du, sums.total(0, width, dz), sums.total(width, width, dz), sums.total(2 * width, width, dz),
          sums.total(3 * width, hidden, dz), sums.total(3 * width + hidden, hidden, dz)};
}

}  // namespace lstmlab_fused
