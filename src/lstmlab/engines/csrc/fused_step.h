// One streaming time step of a unidirectional stack, all layers in C++ (inference only).
#pragma once

#include <torch/extension.h>

#include <vector>

#include "fused_kernels.h"
#include "fused_layer_norm.h"

namespace lstmlab_fused {

// Weights of one layer for a streaming step; optional ones are empty tensors.
struct StepLayer {
  torch::Tensor w_ih, w_hh, bias, w_hr, peephole, ln_ih, ln_hh, ln_c_weight, ln_c_bias;  // bias = b_ih + b_hh
};

// The input share of the gates for one step: z (B, 4H) = [LN](x W_ih^T) [* g_ih] + bias.
template <typename scalar_t>
void step_input_gates(scalar_t* z, const scalar_t* x, const StepLayer& w, int64_t batch, int64_t hidden,
                      int64_t in_size, bool coupled, const at::TensorOptions& options) {
  gemm_bt(z, x, w.w_ih.data_ptr<scalar_t>(), batch, 4 * hidden, in_size, false, options);
  const bool ln = w.ln_ih.numel() > 0;
  const scalar_t* gain = ln ? w.ln_ih.data_ptr<scalar_t>() : nullptr;
  const scalar_t* bias = w.bias.numel() ? w.bias.data_ptr<scalar_t>() : nullptr;
  for (int64_t b = 0; b < batch; ++b) {
    scalar_t* row = z + b * 4 * hidden;
    if (ln) {
      if (coupled) normalize_recurrent<scalar_t, true>(row, hidden);
      else normalize_recurrent<scalar_t, false>(row, hidden);
      for (int64_t j = 0; j < 4 * hidden; ++j) row[j] *= gain[j];
    }
    if (bias)
      for (int64_t j = 0; j < 4 * hidden; ++j) row[j] += bias[j];
  }
}

// One time step of a unidirectional stack, for streaming inference (no autograd): updates
// h (L, B, P) and c (L, B, H) in place and returns the top layer's h (B, P).
inline torch::Tensor fused_step(torch::Tensor x, torch::Tensor h, torch::Tensor c, std::vector<torch::Tensor> flat,
                         bool coupled) {
  const int64_t layers = h.size(0), batch = h.size(1), width = h.size(2), hidden = c.size(2);
  const auto options = c.options();
  auto z = torch::empty({batch, 4 * hidden}, options);
  auto r = torch::empty({batch, 4 * hidden}, options);
  auto c_out = torch::empty({batch, hidden}, options), c_hat = torch::empty({batch, hidden}, options);
  auto m = torch::empty({batch, hidden}, options);
  auto rstd = torch::empty({2}, options);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_step", [&] {
    const scalar_t* input = x.data_ptr<scalar_t>();
    int64_t in_size = x.size(1);
    for (int64_t l = 0; l < layers; ++l) {
      const StepLayer w{flat[9 * l], flat[9 * l + 1], flat[9 * l + 2], flat[9 * l + 3], flat[9 * l + 4],
                        flat[9 * l + 5], flat[9 * l + 6], flat[9 * l + 7], flat[9 * l + 8]};
      scalar_t* h_l = h.data_ptr<scalar_t>() + l * batch * width;
      scalar_t* c_l = c.data_ptr<scalar_t>() + l * batch * hidden;
      scalar_t* zp = z.data_ptr<scalar_t>();
      step_input_gates(zp, input, w, batch, hidden, in_size, coupled, options);
      const scalar_t* peep = w.peephole.numel() ? w.peephole.data_ptr<scalar_t>() : nullptr;
      const bool ln = w.ln_hh.numel() > 0;
      if (ln) gemm_bt(r.data_ptr<scalar_t>(), h_l, w.w_hh.data_ptr<scalar_t>(), batch, 4 * hidden, width, false, options);
      else gemm_bt(zp, h_l, w.w_hh.data_ptr<scalar_t>(), batch, 4 * hidden, width, true, options);
      dispatch_variant(peep != nullptr, coupled, [&](auto peephole_flag, auto coupled_flag) {
        constexpr bool P = decltype(peephole_flag)::value, C = decltype(coupled_flag)::value;
        for (int64_t b = 0; b < batch; ++b) {
          const int64_t wide = b * 4 * hidden, narrow = b * hidden;
          if (ln) {
            activate_row_ln<scalar_t, P, C>(zp + wide, r.data_ptr<scalar_t>() + wide, zp + wide,
                                            c_out.data_ptr<scalar_t>() + narrow, c_hat.data_ptr<scalar_t>() + narrow,
                                            m.data_ptr<scalar_t>() + narrow, c_l + narrow, rstd.data_ptr<scalar_t>(),
                                            rstd.data_ptr<scalar_t>() + 1, peep, w.ln_hh.data_ptr<scalar_t>(),
                                            w.ln_c_weight.data_ptr<scalar_t>(), w.ln_c_bias.data_ptr<scalar_t>(),
                                            hidden);
          } else {
            activate_row<scalar_t, P, C>(zp + wide, c_out.data_ptr<scalar_t>() + narrow,
                                         m.data_ptr<scalar_t>() + narrow, c_l + narrow, peep, hidden);
          }
        }
      });
      if (w.w_hr.numel()) {
        gemm_bt(h_l, m.data_ptr<scalar_t>(), w.w_hr.data_ptr<scalar_t>(), batch, width, hidden, false, options);
      } else {
        std::copy(m.data_ptr<scalar_t>(), m.data_ptr<scalar_t>() + batch * hidden, h_l);
      }
      input = h_l;
      in_size = width;
    }
  });
  return h[layers - 1].clone();
}

}  // namespace lstmlab_fused
