// Row kernels and small GEMMs of the fused LSTM loops (plain, peephole, coupled cells).
// Header-only templates, included by fused_lstm.cpp (one translation unit).
#pragma once

#include <torch/extension.h>

#include <algorithm>

#include "fused_math.h"

namespace lstmlab_fused {

// Products up to this many multiply-adds run in a plain loop: below it, a BLAS call's
// fixed cost (dispatch, packing, threads) is larger than the arithmetic.
constexpr int64_t kSmallGemm = 1 << 17;

// out (rows x n) [+]= a (rows x k) . w^T, with w (n x k); contiguous row-major buffers.
template <typename scalar_t>
void gemm_bt(scalar_t* out, const scalar_t* a, const scalar_t* w, int64_t rows, int64_t n, int64_t k,
             bool accumulate, const at::TensorOptions& options) {
  if (rows * n * k > kSmallGemm) {
    auto out_t = torch::from_blob(out, {rows, n}, options);
    auto a_t = torch::from_blob(const_cast<scalar_t*>(a), {rows, k}, options);
    auto w_t = torch::from_blob(const_cast<scalar_t*>(w), {n, k}, options).t();
    if (accumulate) out_t.addmm_(a_t, w_t);
    else at::mm_out(out_t, a_t, w_t);
    return;
  }
  for (int64_t r = 0; r < rows; ++r) {
    const scalar_t* __restrict a_row = a + r * k;
    for (int64_t j = 0; j < n; ++j) {
      const scalar_t* __restrict w_row = w + j * k;
      scalar_t sum = 0;
      for (int64_t q = 0; q < k; ++q) sum += a_row[q] * w_row[q];
      out[r * n + j] = accumulate ? out[r * n + j] + sum : sum;
    }
  }
}

// out (rows x p) = a (rows x n) . w, with w (n x p); contiguous row-major buffers.
template <typename scalar_t>
void gemm_b(scalar_t* out, const scalar_t* a, const scalar_t* w, int64_t rows, int64_t n, int64_t p,
            const at::TensorOptions& options) {
  if (rows * n * p > kSmallGemm) {
    auto out_t = torch::from_blob(out, {rows, p}, options);
    at::mm_out(out_t, torch::from_blob(const_cast<scalar_t*>(a), {rows, n}, options),
               torch::from_blob(const_cast<scalar_t*>(w), {n, p}, options));
    return;
  }
  for (int64_t r = 0; r < rows; ++r) {
    scalar_t* __restrict out_row = out + r * p;
    std::fill(out_row, out_row + p, scalar_t(0));
    for (int64_t j = 0; j < n; ++j) {
      const scalar_t s = a[r * n + j];
      const scalar_t* __restrict w_row = w + j * p;
      for (int64_t q = 0; q < p; ++q) out_row[q] += s * w_row[q];
    }
  }
}

template <typename scalar_t>
struct StepPointers {
  scalar_t* gates;       // (B, 4H) this step
  scalar_t* cell;        // (B, H) this step
  scalar_t* hidden_pre;  // (B, H) o * tanh(c), this step
  scalar_t* c_state;     // (B, H) running cell state
  const scalar_t* peephole;  // (3H) or nullptr
};

// One hidden unit of the plain / peephole / coupled cell: its gates, new cell state and
// m = o * tanh(c), from the pre-activations zi, zf, zg, zo and c_{t-1}. The peephole
// weights of unit j are peephole[j + k * stride] for i, f, o (read only when Peephole).
// Every row kernel of these cells computes its units with this one function.
template <typename scalar_t>
struct UnitState {
  scalar_t i, f, g, o, c, m;
};

template <typename scalar_t, bool Peephole, int Cell>
inline UnitState<scalar_t> cell_unit(scalar_t zi, scalar_t zf, scalar_t zg, scalar_t zo, scalar_t c_prev,
                                     const scalar_t* __restrict peephole, int64_t j, int64_t stride) {
  if constexpr (Peephole) {
    zi += peephole[j] * c_prev;
    zf += peephole[stride + j] * c_prev;
  }
  // A removed gate is exactly 1 (its dz = d * 1 * (1 - 1) = 0 in the backward, unchanged).
  const scalar_t i = (Cell & kNoInputGate) ? scalar_t(1) : sigmoid(zi);
  const scalar_t f = (Cell & kCoupled) ? scalar_t(1) - i : (Cell & kNoForgetGate) ? scalar_t(1) : sigmoid(zf);
  const scalar_t g = (Cell & kNoInputActivation) ? zg : tanh_(zg);
  const scalar_t c = f * c_prev + i * g;
  if constexpr (Peephole) zo += peephole[2 * stride + j] * c;
  const scalar_t o = (Cell & kNoOutputGate) ? scalar_t(1) : sigmoid(zo);
  return {i, f, g, o, c, o * ((Cell & kNoOutputActivation) ? c : tanh_(c))};
}

// Gate activations (in place in z), the new cell state and m = o * tanh(c) for `count`
// hidden units of one batch row; z and peephole hold the gate slices `stride` apart
// (i at 0, f at stride, ...). The variant flags are template parameters and every pointer
// is a __restrict parameter, so that the loop has no branches and GCC vectorises it.
template <typename scalar_t, bool Peephole, int Cell>
inline void activate_units(scalar_t* __restrict z, scalar_t* __restrict c_out, scalar_t* __restrict m_out,
                           scalar_t* __restrict c_run, const scalar_t* __restrict peephole, int64_t count,
                           int64_t stride) {
#pragma omp simd  // every unit on its own (see activate_tile_row): GCC left the peephole cell scalar without it
  for (int64_t j = 0; j < count; ++j) {
    const auto u = cell_unit<scalar_t, Peephole, Cell>(z[j], z[stride + j], z[2 * stride + j],
                                                          z[3 * stride + j], c_run[j], peephole, j, stride);
    z[j] = u.i;
    z[stride + j] = u.f;
    z[2 * stride + j] = u.g;
    z[3 * stride + j] = u.o;
    c_out[j] = u.c;
    c_run[j] = u.c;
    m_out[j] = u.m;
  }
}

// One batch row of one step (all H units): see activate_units.
template <typename scalar_t, bool Peephole, int Cell>
void activate_row(scalar_t* z, scalar_t* c_out, scalar_t* m_out, scalar_t* c_run, const scalar_t* peephole,
                  int64_t hidden) {
  activate_units<scalar_t, Peephole, Cell>(z, c_out, m_out, c_run, peephole, hidden, hidden);
}

// Batch rows [begin, end) of one step; padded rows are zeroed and keep their state.
template <typename scalar_t, bool Peephole, int Cell>
void activate_rows(StepPointers<scalar_t> p, int64_t hidden, const int64_t* lengths, int64_t t,
                   int64_t begin, int64_t end) {
  for (int64_t b = begin; b < end; ++b) {
    scalar_t* z = p.gates + b * 4 * hidden;
    scalar_t* c_out = p.cell + b * hidden;
    scalar_t* m_out = p.hidden_pre + b * hidden;
    if (!is_valid(lengths, b, t)) {
      std::fill(z, z + 4 * hidden, scalar_t(0));
      std::fill(c_out, c_out + hidden, scalar_t(0));
      std::fill(m_out, m_out + hidden, scalar_t(0));
      continue;
    }
    activate_row<scalar_t, Peephole, Cell>(z, c_out, m_out, p.c_state + b * hidden, p.peephole, hidden);
  }
}

// Copy this step's hidden rows into the running state (valid rows only).
template <typename scalar_t>
void update_hidden(scalar_t* h_state, const scalar_t* h_step, int64_t batch, int64_t width,
                   const int64_t* lengths, int64_t t) {
  for (int64_t b = 0; b < batch; ++b) {
    if (!is_valid(lengths, b, t)) continue;
    std::copy(h_step + b * width, h_step + (b + 1) * width, h_state + b * width);
  }
}

// dL/d(i, f, g, o) arriving through the trace: one (T, B, H) tensor per gate, or for a
// gate the trace gives no gradient, one step of zeros (B, H) with step 0. Gate k of batch
// row b at step t starts at at(k, t, b).
template <typename scalar_t>
struct GateGrads {
  const scalar_t* base[4];
  int64_t step[4];  // B*H, or 0 for the zeros
  int64_t hidden;
  const scalar_t* at(int k, int64_t t, int64_t b) const { return base[k] + t * step[k] + b * hidden; }
};

// dL/dz of one unit's four gates, and dL/dc_{t-1}.
template <typename scalar_t>
struct UnitGrads {
  scalar_t dzi, dzf, dzg, dzo, dc_prev;
};

// The gate part of one unit's backward, shared by the plain and the layer-norm cells: all
// in scalars, so that the loops calling it (backward_units, backward_row_ln) vectorise.
// In: the unit's gates i, f, g, o and c_{t-1} (cp); d_o = dL/do and dc = dL/dc_t (from h,
// later steps and the trace; the output peephole's share is added here); di_t, df_t, dg_t,
// the trace's gradients of i, f, g; p_i, p_f, p_o the unit's peephole weights (Peephole).
template <typename scalar_t, bool Peephole, int Cell>
inline UnitGrads<scalar_t> unit_backward(scalar_t i, scalar_t f, scalar_t g, scalar_t o, scalar_t cp, scalar_t d_o,
                                         scalar_t dc, scalar_t di_t, scalar_t df_t, scalar_t dg_t, scalar_t p_i,
                                         scalar_t p_f, scalar_t p_o) {
  const scalar_t dzo = d_o * o * (scalar_t(1) - o);
  if constexpr (Peephole) dc += dzo * p_o;
  scalar_t di = dc * g + di_t;
  const scalar_t dg = dc * i + dg_t;
  const scalar_t df = dc * cp + df_t;
  scalar_t dzf = 0;
  if constexpr ((Cell & kCoupled) != 0) di -= df;  // f = 1 - i
  else dzf = df * f * (scalar_t(1) - f);
  const scalar_t dzi = di * i * (scalar_t(1) - i);
  scalar_t dcp = dc * f;
  if constexpr (Peephole) dcp += dzi * p_i + dzf * p_f;
  const scalar_t dzg = (Cell & kNoInputActivation) ? dg : dg * (scalar_t(1) - g * g);  // g = z_g, or tanh(z_g)
  return {dzi, dzf, dzg, dzo, dcp};
}

// Peephole weight k (i, f, o) of unit j, or 0 without peephole (peephole may be null then).
template <bool Peephole, typename scalar_t>
inline scalar_t peephole_at(const scalar_t* peephole, int k, int64_t j, int64_t stride) {
  if constexpr (Peephole) return peephole[k * stride + j];
  return scalar_t(0);
}

// Zoneout (Krueger et al. 2016) on one step's state, after the cell computed `fresh`:
// state = keep * prev + (1 - keep) * fresh, for valid rows. `fresh` (B, W) holds the new
// values and becomes the zoned-out state; `saved` (B, W), if given, keeps the fresh values,
// 0 on padded rows (it is a recycled buffer: left unwritten, it held whatever was there,
// NaN at times, and the peephole gradient's sum of dz_o * saved turned NaN with it).
template <typename scalar_t>
void zoneout_rows(scalar_t* fresh, const scalar_t* prev, const scalar_t* keep, scalar_t* saved, int64_t batch,
                  int64_t width, const int64_t* lengths, int64_t t) {
  for (int64_t b = 0; b < batch; ++b) {
    if (!is_valid(lengths, b, t)) {
      if (saved) std::fill(saved + b * width, saved + (b + 1) * width, scalar_t(0));
      continue;
    }
    scalar_t* __restrict row = fresh + b * width;
    const scalar_t* __restrict before = prev + b * width;
    const scalar_t* __restrict k = keep + b * width;
    if (saved) std::copy(row, row + width, saved + b * width);
    for (int64_t j = 0; j < width; ++j) row[j] = k[j] * before[j] + (scalar_t(1) - k[j]) * row[j];
  }
}

// Zoneout's backward split for valid rows: of the gradient d (B, W) reaching a zoned-out
// state, (1 - keep) * d goes to the fresh value (written to `fresh_grad`) and keep * d
// straight to the previous state (written to `carry`).
template <typename scalar_t>
void zoneout_backward_rows(const scalar_t* d, const scalar_t* keep, scalar_t* fresh_grad, scalar_t* carry,
                           int64_t batch, int64_t width, const int64_t* lengths, int64_t t) {
  for (int64_t b = 0; b < batch; ++b) {
    if (!is_valid(lengths, b, t)) continue;
    for (int64_t j = b * width; j < (b + 1) * width; ++j) {
      const scalar_t grad = d[j];
      carry[j] = keep[j] * grad;
      fresh_grad[j] = (scalar_t(1) - keep[j]) * grad;
    }
  }
}

// Gradient of the gate pre-activations for `count` hidden units of one batch row of one
// step; gates, dz and peephole hold gate slices `stride` apart.
// dm: dL/dm; di_t .. do_t and dct: gradients arriving through the trace;
// dc: running dL/dc, updated in place to dL/dc_{t-1}; dz: output.
template <typename scalar_t, bool Peephole, int Cell>
inline void backward_units(const scalar_t* __restrict gates, const scalar_t* __restrict cells,
                           const scalar_t* __restrict c_prev, const scalar_t* __restrict dm_row,
                           const scalar_t* __restrict di_t, const scalar_t* __restrict df_t,
                           const scalar_t* __restrict dg_t, const scalar_t* __restrict do_t,
                           const scalar_t* __restrict dct, const scalar_t* __restrict peephole,
                           scalar_t* __restrict dz, scalar_t* __restrict dc_row, int64_t count, int64_t stride) {
  const scalar_t *gi = gates, *gf = gates + stride, *gg = gates + 2 * stride, *go = gates + 3 * stride;
  scalar_t *dzi_out = dz, *dzf_out = dz + stride, *dzg_out = dz + 2 * stride, *dzo_out = dz + 3 * stride;
  for (int64_t j = 0; j < count; ++j) {
    // m = o tanh(c), or o c without the output activation (NOAF)
    const scalar_t o = go[j], th = (Cell & kNoOutputActivation) ? cells[j] : tanh_(cells[j]), dm = dm_row[j];
    const scalar_t dth = (Cell & kNoOutputActivation) ? scalar_t(1) : scalar_t(1) - th * th;
    const auto d = unit_backward<scalar_t, Peephole, Cell>(
        gi[j], gf[j], gg[j], o, c_prev[j], dm * th + do_t[j], dc_row[j] + dm * o * dth + dct[j],
        di_t[j], df_t[j], dg_t[j], peephole_at<Peephole>(peephole, 0, j, stride),
        peephole_at<Peephole>(peephole, 1, j, stride), peephole_at<Peephole>(peephole, 2, j, stride));
    dzi_out[j] = d.dzi;
    dzf_out[j] = d.dzf;
    dzg_out[j] = d.dzg;
    dzo_out[j] = d.dzo;
    dc_row[j] = d.dc_prev;
  }
}

// Batch rows [begin, end) of step t's backward (all H units, see backward_units); padded
// rows pass the state through. dgt: the trace's gate gradients of all steps.
template <typename scalar_t, bool Peephole, int Cell>
void backward_rows(const scalar_t* gates, const scalar_t* cells, const scalar_t* c_prev,
                   const scalar_t* d_hidden_pre, const GateGrads<scalar_t>& dgt, const scalar_t* d_cells_trace,
                   const scalar_t* peephole, scalar_t* dz, scalar_t* dc_next, int64_t hidden,
                   const int64_t* lengths, int64_t t, int64_t begin, int64_t end) {
  for (int64_t b = begin; b < end; ++b) {
    const int64_t wide = b * 4 * hidden, narrow = b * hidden;
    if (!is_valid(lengths, b, t)) {
      std::fill(dz + wide, dz + wide + 4 * hidden, scalar_t(0));
      continue;
    }
    backward_units<scalar_t, Peephole, Cell>(gates + wide, cells + narrow, c_prev + narrow, d_hidden_pre + narrow,
                                                dgt.at(0, t, b), dgt.at(1, t, b), dgt.at(2, t, b), dgt.at(3, t, b),
                                                d_cells_trace + narrow, peephole, dz + wide, dc_next + narrow, hidden,
                                                hidden);
  }
}

}  // namespace lstmlab_fused
