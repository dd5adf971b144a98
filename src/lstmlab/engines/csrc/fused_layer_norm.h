// Row kernels of the layer-normalised cell (Ba, Kiros & Hinton 2016), as in cell.py:
//   z   = LN(W_ih x) * g_ih + b + LN(W_hh h_{t-1}) * g_hh   (the loops get u_hat = LN(W_ih x))
//   h_t = o * tanh(LN(c_t) * g_c + b_c)
// LN runs over the whole gate vector (over i, g, o only for the coupled cell, whose f
// slice is unused) and over the H cell units. Each row kernel makes a few passes over
// one batch row: moments first, then the elementwise work (all loops vectorise).
#pragma once

#include "fused_kernels.h"
#include "fused_math.h"

namespace lstmlab_fused {

constexpr double kLayerNormEps = 1e-5;  // cell.LN_EPS

// The statistics and the normalisation run in double, rounded once to scalar_t at the
// end. In float, -ffast-math has GCC compute 1/sqrtf with the approximate rsqrt
// instruction and one Newton step (~1.5 ulp off), and (x - mean) * rstd rounds twice; the
// rstd error scales a whole normalised row alike, so unlike the rounding of single
// elements it does not average out in the sums downstream (W_hh h, the next layer, the
// weight gradients). A float32 layer-norm cell's gradients were then up to 4x the float32
// reference's error against float64; rounding once, as torch's layer_norm nearly does,
// they are on par with it.
inline double inverse_std(double sum_sq, int64_t n) { return 1.0 / std::sqrt(sum_sq / double(n) + kLayerNormEps); }

// Mean and 1/sqrt(var + eps) of x[0, n), in double (two passes).
template <typename scalar_t>
inline void moments(const scalar_t* __restrict x, int64_t n, double& mean, double& rstd) {
  double sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += double(x[j]);
  mean = sum / double(n);
  double sq = 0;
  for (int64_t j = 0; j < n; ++j) sq += (double(x[j]) - mean) * (double(x[j]) - mean);
  rstd = inverse_std(sq, n);
}

// The slices of the gate vector that LN covers: all four, or i, g, o when coupled.
template <bool Coupled>
inline int64_t used_count(int64_t hidden) { return Coupled ? 3 * hidden : 4 * hidden; }

// Normalise the pre-activation row r (4H) in place to r_hat, return its rstd (in double,
// see inverse_std). Also the input share's LN (fused_input_norm.h, the streaming step).
template <typename scalar_t, bool Coupled>
scalar_t normalize_recurrent(scalar_t* __restrict r, int64_t hidden) {
  double sum = 0, sq = 0;
  const int64_t n = used_count<Coupled>(hidden);
  for (int64_t j = 0; j < 4 * hidden; ++j) sum += (Coupled && j >= hidden && j < 2 * hidden) ? 0.0 : double(r[j]);
  const double mean = sum / double(n);
  for (int64_t j = 0; j < 4 * hidden; ++j) {
    const double d = (Coupled && j >= hidden && j < 2 * hidden) ? 0.0 : double(r[j]) - mean;
    sq += d * d;
  }
  const double rstd = inverse_std(sq, n);
  for (int64_t j = 0; j < 4 * hidden; ++j)
    r[j] = (Coupled && j >= hidden && j < 2 * hidden) ? scalar_t(0) : scalar_t((double(r[j]) - mean) * rstd);
  return scalar_t(rstd);
}

// Backward of a gate-vector LN (`normalize_recurrent`) followed by a gain: from dy (4H) =
// dL/d(x_hat * gain), x_hat (4H) and rstd, dx (4H) = dL/dx =
// rstd * (d_hat - mean(d_hat) - x_hat * mean(d_hat x_hat)), d_hat = dy * gain (means over
// the slices LN covers; dx's f slice is 0 when coupled).
template <typename scalar_t, bool Coupled>
void normalize_backward(const scalar_t* __restrict dy, const scalar_t* __restrict x_hat,
                        const scalar_t* __restrict gain, scalar_t rstd, scalar_t* __restrict dx, int64_t hidden) {
  const int64_t n = used_count<Coupled>(hidden);
  scalar_t sum = 0, sum_x = 0;
  for (int64_t j = 0; j < 4 * hidden; ++j) {
    const scalar_t d_hat = dy[j] * gain[j];  // f slice: x_hat = 0 and dy = 0 there when coupled
    sum += (Coupled && j >= hidden && j < 2 * hidden) ? scalar_t(0) : d_hat;
    sum_x += d_hat * x_hat[j];
  }
  const scalar_t mean = sum / scalar_t(n), mean_x = sum_x / scalar_t(n);
  for (int64_t j = 0; j < 4 * hidden; ++j) {
    const scalar_t value = rstd * (dy[j] * gain[j] - mean - x_hat[j] * mean_x);
    dx[j] = (Coupled && j >= hidden && j < 2 * hidden) ? scalar_t(0) : value;
  }
}

// Forward of one row. In: u_hat (4H) = LN(W_ih x), the input share's gain g_ih and bias b_in
// (4H), r = W_hh h_{t-1} (4H, normalised in place).
// Out: z (4H, post-activation gates), c_out/c_run (H), c_hat (H) = LN(c) before gain,
// m (H) = o * tanh(c_hat * g_c + b_c); returns {rstd of r, rstd of c} through pointers.
template <typename scalar_t, bool Peephole, bool Coupled>
void activate_row_ln(const scalar_t* __restrict u_hat, const scalar_t* __restrict g_ih,
                     const scalar_t* __restrict b_in, scalar_t* __restrict r, scalar_t* __restrict z,
                     scalar_t* __restrict c_out, scalar_t* __restrict c_hat, scalar_t* __restrict m_out,
                     scalar_t* __restrict c_run, scalar_t* rstd_r, scalar_t* rstd_c,
                     const scalar_t* __restrict peephole, const scalar_t* __restrict g_hh,
                     const scalar_t* __restrict g_c, const scalar_t* __restrict b_c, int64_t hidden) {
  *rstd_r = normalize_recurrent<scalar_t, Coupled>(r, hidden);
  for (int64_t j = 0; j < 4 * hidden; ++j) z[j] = u_hat[j] * g_ih[j] + b_in[j] + r[j] * g_hh[j];
  for (int64_t j = 0; j < hidden; ++j) {
    const scalar_t c_prev = c_run[j];
    scalar_t zi = z[j], zf = z[hidden + j], zo = z[3 * hidden + j];
    if constexpr (Peephole) {
      zi += peephole[j] * c_prev;
      zf += peephole[hidden + j] * c_prev;
    }
    const scalar_t i = sigmoid(zi);
    const scalar_t f = Coupled ? scalar_t(1) - i : sigmoid(zf);
    const scalar_t g = tanh_(z[2 * hidden + j]);
    const scalar_t c = f * c_prev + i * g;
    if constexpr (Peephole) zo += peephole[2 * hidden + j] * c;
    z[j] = i;
    z[hidden + j] = f;
    z[2 * hidden + j] = g;
    z[3 * hidden + j] = sigmoid(zo);
    c_out[j] = c;
    c_run[j] = c;
  }
  double mean, rc;
  moments(c_out, hidden, mean, rc);
  *rstd_c = scalar_t(rc);
  for (int64_t j = 0; j < hidden; ++j) c_hat[j] = scalar_t((double(c_out[j]) - mean) * rc);
  for (int64_t j = 0; j < hidden; ++j) m_out[j] = z[3 * hidden + j] * tanh_(c_hat[j] * g_c[j] + b_c[j]);
}

// Backward of one row. In: the forward's row values, dm (H) = dL/dm, dgt[k] (H) (gate k)
// and dct (H) from the trace, dc_row (H) = dL/dc_t from later steps (updated to dL/dc_{t-1}).
// Out: dz (4H) = dL/dz, dc_ln (H) = dL/d(LN(c) g_c + b_c), dr (4H) = dL/d(W_hh h_{t-1}).
template <typename scalar_t, bool Peephole, bool Coupled>
void backward_row_ln(const scalar_t* __restrict gates, const scalar_t* __restrict c_prev,
                     const scalar_t* __restrict c_hat, scalar_t rstd_c, const scalar_t* __restrict r_hat,
                     scalar_t rstd_r, const scalar_t* __restrict dm, const scalar_t* const* dgt,
                     const scalar_t* __restrict dct, const scalar_t* __restrict peephole,
                     const scalar_t* __restrict g_hh, const scalar_t* __restrict g_c,
                     const scalar_t* __restrict b_c, scalar_t* __restrict dz, scalar_t* __restrict dc_row,
                     scalar_t* __restrict dc_ln, scalar_t* __restrict dr, int64_t hidden) {
  scalar_t sum_d = 0, sum_dx = 0;  // moments of d(c_hat) for the LN(c) backward
  for (int64_t j = 0; j < hidden; ++j) {
    const scalar_t th = tanh_(c_hat[j] * g_c[j] + b_c[j]);
    const scalar_t o = gates[3 * hidden + j];
    dc_ln[j] = dm[j] * o * (scalar_t(1) - th * th);
    const scalar_t d_hat = dc_ln[j] * g_c[j];
    sum_d += d_hat;
    sum_dx += d_hat * c_hat[j];
  }
  const scalar_t mean_d = sum_d / scalar_t(hidden), mean_dx = sum_dx / scalar_t(hidden);
  const scalar_t *__restrict di_t = dgt[0], *__restrict df_t = dgt[1], *__restrict dg_t = dgt[2],
                 *__restrict do_t = dgt[3];
  scalar_t *__restrict dzi = dz, *__restrict dzf = dz + hidden, *__restrict dzg = dz + 2 * hidden,
           *__restrict dzo = dz + 3 * hidden;
  for (int64_t j = 0; j < hidden; ++j) {
    const scalar_t th = tanh_(c_hat[j] * g_c[j] + b_c[j]);  // h = o tanh(LN(c) g_c + b_c)
    const scalar_t d_hat = dc_ln[j] * g_c[j];
    const auto d = unit_backward<scalar_t, Peephole, Coupled>(
        gates[j], gates[hidden + j], gates[2 * hidden + j], gates[3 * hidden + j], c_prev[j], dm[j] * th + do_t[j],
        dc_row[j] + rstd_c * (d_hat - mean_d - c_hat[j] * mean_dx) + dct[j], di_t[j], df_t[j], dg_t[j],
        peephole_at<Peephole>(peephole, 0, j, hidden), peephole_at<Peephole>(peephole, 1, j, hidden),
        peephole_at<Peephole>(peephole, 2, j, hidden));
    dzi[j] = d.dzi;
    dzf[j] = d.dzf;
    dzg[j] = d.dzg;
    dzo[j] = d.dzo;
    dc_row[j] = d.dc_prev;
  }
  normalize_backward<scalar_t, Coupled>(dz, r_hat, g_hh, rstd_r, dr, hidden);  // LN of the recurrent part
}

// Row loops of one step, for batch rows [begin, end), used by the sequence loops.

// Layer-norm weights of one layer-direction (all empty for the plain cell).
struct LayerNormWeights {
  torch::Tensor g_hh, g_c, b_c;  // (4H,), (H,), (H,)
  torch::Tensor g_ih, b_in;      // (4H,) x 2: the input share's gain and bias (forward only)
  bool on() const { return g_hh.numel() > 0; }
};

// Saved by the layer-norm forward for its backward: normalised r and c, and their rstd.
struct LayerNormSaved {
  torch::Tensor r_hat, rstd_r, c_hat, rstd_c;  // (T,B,4H), (T,B), (T,B,H), (T,B)
};

// One layer-norm step for batch rows [begin, end); padded rows are zeroed, state kept.
template <typename scalar_t, bool Peephole, bool Coupled>
void layer_norm_rows(const scalar_t* u_hat, StepPointers<scalar_t> p, scalar_t* r, scalar_t* c_hat,
                     scalar_t* rstd_r, scalar_t* rstd_c, const LayerNormWeights& w, int64_t hidden,
                     const int64_t* lengths, int64_t t, int64_t begin, int64_t end) {
  const scalar_t* g_hh = w.g_hh.data_ptr<scalar_t>();
  const scalar_t* g_c = w.g_c.data_ptr<scalar_t>();
  const scalar_t* b_c = w.b_c.data_ptr<scalar_t>();
  const scalar_t* g_ih = w.g_ih.data_ptr<scalar_t>();
  const scalar_t* b_in = w.b_in.data_ptr<scalar_t>();
  for (int64_t b = begin; b < end; ++b) {
    const int64_t wide = b * 4 * hidden, narrow = b * hidden;
    if (!is_valid(lengths, b, t)) {
      std::fill(p.gates + wide, p.gates + wide + 4 * hidden, scalar_t(0));
      std::fill(r + wide, r + wide + 4 * hidden, scalar_t(0));
      for (scalar_t* row : {p.cell + narrow, p.hidden_pre + narrow, c_hat + narrow})
        std::fill(row, row + hidden, scalar_t(0));
      rstd_r[b] = rstd_c[b] = 0;
      continue;
    }
    activate_row_ln<scalar_t, Peephole, Coupled>(u_hat + wide, g_ih, b_in, r + wide, p.gates + wide, p.cell + narrow,
                                                 c_hat + narrow, p.hidden_pre + narrow, p.c_state + narrow,
                                                 rstd_r + b, rstd_c + b, p.peephole, g_hh, g_c, b_c, hidden);
  }
}

// One step's slice of what the layer-norm forward saved.
template <typename scalar_t>
struct LayerNormStep {
  const scalar_t* r_hat;   // (B, 4H)
  const scalar_t* c_hat;   // (B, H)
  const scalar_t* rstd_r;  // (B,)
  const scalar_t* rstd_c;  // (B,)
};

// One layer-norm backward step for batch rows [begin, end); padded rows pass the state through.
template <typename scalar_t, bool Peephole, bool Coupled>
void layer_norm_backward_rows(const scalar_t* gates, const scalar_t* c_prev, LayerNormStep<scalar_t> saved,
                              const LayerNormWeights& w, const scalar_t* dm, const GateGrads<scalar_t>& dgt,
                              const scalar_t* dct,
                              const scalar_t* peephole, scalar_t* dz, scalar_t* dc_next, scalar_t* dc_ln,
                              scalar_t* dr, int64_t hidden, const int64_t* lengths, int64_t t, int64_t begin,
                              int64_t end) {
  const scalar_t* r_hat = saved.r_hat;
  const scalar_t* c_hat = saved.c_hat;
  const scalar_t* rstd_r = saved.rstd_r;
  const scalar_t* rstd_c = saved.rstd_c;
  for (int64_t b = begin; b < end; ++b) {
    const int64_t wide = b * 4 * hidden, narrow = b * hidden;
    if (!is_valid(lengths, b, t)) {
      std::fill(dz + wide, dz + wide + 4 * hidden, scalar_t(0));
      std::fill(dr + wide, dr + wide + 4 * hidden, scalar_t(0));
      std::fill(dc_ln + narrow, dc_ln + narrow + hidden, scalar_t(0));
      continue;
    }
    const scalar_t* d_gate_rows[4] = {dgt.at(0, t, b), dgt.at(1, t, b), dgt.at(2, t, b), dgt.at(3, t, b)};
    backward_row_ln<scalar_t, Peephole, Coupled>(
        gates + wide, c_prev + narrow, c_hat + narrow, rstd_c[b], r_hat + wide, rstd_r[b], dm + narrow,
        d_gate_rows, dct + narrow, peephole, w.g_hh.data_ptr<scalar_t>(), w.g_c.data_ptr<scalar_t>(),
        w.b_c.data_ptr<scalar_t>(), dz + wide, dc_next + narrow, dc_ln + narrow, dr + wide, hidden);
  }
}

}  // namespace lstmlab_fused
