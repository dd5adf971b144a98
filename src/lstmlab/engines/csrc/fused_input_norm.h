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
// T*B terms would otherwise lose digits that torch's cascade sums keep).
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
        double* acc = sums.mine();
        double *d_g_ih = acc, *d_bias = acc + width, *d_g_hh = acc + 2 * width;
        double *d_g_c = acc + 3 * width, *d_b_c = d_g_c + hidden;
        for (int64_t n = begin; n < end; ++n) {
          const scalar_t* dz_row = dz_ptr + n * width;
          const scalar_t* u_row = u_ptr + n * width;
          const scalar_t* r_row = r_ptr + n * width;
          normalize_backward<scalar_t, Coupled>(dz_row, u_row, g, rstd[n], du_ptr + n * width, hidden);
          for (int64_t j = 0; j < width; ++j) {
            d_g_ih[j] += double(dz_row[j]) * double(u_row[j]);
            d_bias[j] += double(dz_row[j]);
            d_g_hh[j] += double(dz_row[j]) * double(r_row[j]);
          }
          const scalar_t* dcl_row = dcl_ptr + n * hidden;
          const scalar_t* ch_row = ch_ptr + n * hidden;
          for (int64_t j = 0; j < hidden; ++j) {
            d_g_c[j] += double(dcl_row[j]) * double(ch_row[j]);
            d_b_c[j] += double(dcl_row[j]);
          }
        }
      });
    });
  });
  return {du, sums.total(0, width, dz), sums.total(width, width, dz), sums.total(2 * width, width, dz),
          sums.total(3 * width, hidden, dz), sums.total(3 * width + hidden, hidden, dz)};
}

}  // namespace lstmlab_fused
