// Fused CPU LSTM: the time loop of one layer and direction, forward and backward,
// in C++, with the gate math done in one pass over each step's (B, 4H) block.
//
// The math is lstmlab/cell.py's (plain, peephole, coupled; projection; valid lengths).
// Python (engines/fused.py) does the big GEMMs around the loop: the input gates of all
// steps before it, and dW, dX after it. Each step here is one GEMM (addmm into the
// step's gate block) plus an elementwise pass, with no Python and no allocation.
//
// Layout: gates (T, B, 4H) hold the post-activation (i | f | g | o); C (T, B, H) the
// cell states; M (T, B, H) = o * tanh(c) (the unprojected hidden state); H (T, B, P).
// Padded steps (t >= length) hold zeros and leave the state unchanged.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "fused_layer_norm.h"
#include "fused_math.h"

namespace {

using namespace lstmlab_fused;

template <typename scalar_t>
struct StepPointers {
  scalar_t* gates;       // (B, 4H) this step
  scalar_t* cell;        // (B, H) this step
  scalar_t* hidden_pre;  // (B, H) o * tanh(c), this step
  scalar_t* c_state;     // (B, H) running cell state
  const scalar_t* peephole;  // (3H) or nullptr
};

// One batch row of one step: gate activations (in place in z), the new cell state,
// and m = o * tanh(c). The variant flags are template parameters and every pointer is
// a __restrict parameter, so that the loop has no branches and GCC vectorises it.
template <typename scalar_t, bool Peephole, bool Coupled>
void activate_row(scalar_t* __restrict z, scalar_t* __restrict c_out, scalar_t* __restrict m_out,
                  scalar_t* __restrict c_run, const scalar_t* __restrict peephole, int64_t hidden) {
  for (int64_t j = 0; j < hidden; ++j) {
    const scalar_t c_prev = c_run[j];
    scalar_t zi = z[j], zf = z[hidden + j], zg = z[2 * hidden + j], zo = z[3 * hidden + j];
    if constexpr (Peephole) {
      zi += peephole[j] * c_prev;
      zf += peephole[hidden + j] * c_prev;
    }
    const scalar_t i = sigmoid(zi);
    const scalar_t f = Coupled ? scalar_t(1) - i : sigmoid(zf);
    const scalar_t g = tanh_(zg);
    const scalar_t c = f * c_prev + i * g;
    if constexpr (Peephole) zo += peephole[2 * hidden + j] * c;
    const scalar_t o = sigmoid(zo);
    z[j] = i;
    z[hidden + j] = f;
    z[2 * hidden + j] = g;
    z[3 * hidden + j] = o;
    c_out[j] = c;
    c_run[j] = c;
    m_out[j] = o * tanh_(c);
  }
}

// Batch rows [begin, end) of one step; padded rows are zeroed and keep their state.
template <typename scalar_t, bool Peephole, bool Coupled>
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
    activate_row<scalar_t, Peephole, Coupled>(z, c_out, m_out, p.c_state + b * hidden, p.peephole, hidden);
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

}  // namespace

// Layer-norm weights of one layer-direction (all empty for the plain cell).
struct LayerNormWeights {
  torch::Tensor g_hh, g_c, b_c;  // (4H,), (H,), (H,)
  bool on() const { return g_hh.numel() > 0; }
};

// Saved by the layer-norm forward for its backward: normalised r and c, and their rstd.
struct LayerNormSaved {
  torch::Tensor r_hat, rstd_r, c_hat, rstd_c;  // (T,B,4H), (T,B), (T,B,H), (T,B)
};

// One layer-norm step for batch rows [begin, end); padded rows are zeroed, state kept.
template <typename scalar_t, bool Peephole, bool Coupled>
void layer_norm_rows(const scalar_t* x_gates, StepPointers<scalar_t> p, scalar_t* r, scalar_t* c_hat,
                     scalar_t* rstd_r, scalar_t* rstd_c, const LayerNormWeights& w, int64_t hidden,
                     const int64_t* lengths, int64_t t, int64_t begin, int64_t end) {
  const scalar_t* g_hh = w.g_hh.data_ptr<scalar_t>();
  const scalar_t* g_c = w.g_c.data_ptr<scalar_t>();
  const scalar_t* b_c = w.b_c.data_ptr<scalar_t>();
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
    activate_row_ln<scalar_t, Peephole, Coupled>(x_gates + wide, r + wide, p.gates + wide, p.cell + narrow,
                                                 c_hat + narrow, p.hidden_pre + narrow, p.c_state + narrow,
                                                 rstd_r + b, rstd_c + b, p.peephole, g_hh, g_c, b_c, hidden);
  }
}

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

// Returns {gates (T,B,4H), C (T,B,H), M (T,B,H), H (T,B,P), h_n (B,P), c_n (B,H)}, then for
// layer norm {r_hat (T,B,4H), rstd_r (T,B), c_hat (T,B,H), rstd_c (T,B)} (empty otherwise).
std::vector<torch::Tensor> fused_forward(torch::Tensor input_gates, torch::Tensor h0, torch::Tensor c0,
                                         torch::Tensor w_hh, torch::Tensor w_hr, torch::Tensor peephole,
                                         torch::Tensor ln_g_hh, torch::Tensor ln_g_c, torch::Tensor ln_b_c,
                                         torch::Tensor lengths, bool reverse, bool coupled) {
  const LayerNormWeights ln{ln_g_hh, ln_g_c, ln_b_c};
  const int64_t steps = input_gates.size(0), batch = input_gates.size(1), hidden = c0.size(1);
  const bool project = w_hr.defined() && w_hr.numel() > 0;
  const int64_t width = h0.size(1), wide = batch * 4 * hidden, narrow = batch * hidden;
  auto gates = torch::empty_like(input_gates);
  auto cells = torch::empty({steps, batch, hidden}, c0.options());
  auto hidden_pre = torch::empty({steps, batch, hidden}, c0.options());
  auto hiddens = project ? torch::empty({steps, batch, width}, h0.options()) : hidden_pre;
  auto h_state = h0.clone();
  auto c_state = c0.clone();
  const int64_t* len_ptr = lengths.numel() ? lengths.data_ptr<int64_t>() : nullptr;
  LayerNormSaved saved;
  if (ln.on()) {
    saved = {torch::empty_like(input_gates), torch::empty({steps, batch}, c0.options()),
             torch::empty({steps, batch, hidden}, c0.options()), torch::empty({steps, batch}, c0.options())};
  }
  const auto options = c0.options();
  AT_DISPATCH_FLOATING_TYPES(input_gates.scalar_type(), "fused_forward", [&] {
    const scalar_t* peep = peephole.numel() ? peephole.data_ptr<scalar_t>() : nullptr;
    const scalar_t* x_gates = input_gates.data_ptr<scalar_t>();
    const scalar_t* w_rec = w_hh.data_ptr<scalar_t>();
    scalar_t* h_run = h_state.data_ptr<scalar_t>();
    for (int64_t k = 0; k < steps; ++k) {
      const int64_t t = time_index(k, steps, reverse);
      StepPointers<scalar_t> p{gates.data_ptr<scalar_t>() + t * wide, cells.data_ptr<scalar_t>() + t * narrow,
                               hidden_pre.data_ptr<scalar_t>() + t * narrow, c_state.data_ptr<scalar_t>(), peep};
      if (ln.on()) {
        scalar_t* r = saved.r_hat.data_ptr<scalar_t>() + t * wide;
        gemm_bt(r, h_run, w_rec, batch, 4 * hidden, width, false, options);  // normalised in place below
        dispatch_variant(peep != nullptr, coupled, [&](auto peephole_flag, auto coupled_flag) {
          at::parallel_for(0, batch, grain(hidden), [&](int64_t begin, int64_t end) {
            layer_norm_rows<scalar_t, decltype(peephole_flag)::value, decltype(coupled_flag)::value>(
                x_gates + t * wide, p, r, saved.c_hat.data_ptr<scalar_t>() + t * narrow,
                saved.rstd_r.data_ptr<scalar_t>() + t * batch, saved.rstd_c.data_ptr<scalar_t>() + t * batch, ln,
                hidden, len_ptr, t, begin, end);
          });
        });
      } else {
        std::copy(x_gates + t * wide, x_gates + (t + 1) * wide, p.gates);
        gemm_bt(p.gates, h_run, w_rec, batch, 4 * hidden, width, true, options);  // (B, 4H)
        dispatch_variant(peep != nullptr, coupled, [&](auto peephole_flag, auto coupled_flag) {
          at::parallel_for(0, batch, grain(hidden), [&](int64_t begin, int64_t end) {
            activate_rows<scalar_t, decltype(peephole_flag)::value, decltype(coupled_flag)::value>(
                p, hidden, len_ptr, t, begin, end);
          });
        });
      }
      scalar_t* h_step = hiddens.data_ptr<scalar_t>() + t * batch * width;
      if (project) {  // (B, P); padded rows of M are 0, so are theirs
        gemm_bt(h_step, p.hidden_pre, w_hr.data_ptr<scalar_t>(), batch, width, hidden, false, options);
      }
      update_hidden<scalar_t>(h_run, h_step, batch, width, len_ptr, t);
    }
  });
  return {gates, cells, hidden_pre, hiddens, h_state, c_state, saved.r_hat, saved.rstd_r, saved.c_hat, saved.rstd_c};
}

// Gradient of the gate pre-activations for one batch row of one step.
// dm: dL/dm (H); dgt (4H) and dct (H): gradients arriving through the trace;
// dc: running dL/dc (H), updated in place to dL/dc_{t-1}; dz: output (4H).
template <typename scalar_t, bool Peephole, bool Coupled>
void backward_row(const scalar_t* __restrict gates, const scalar_t* __restrict cells,
                  const scalar_t* __restrict c_prev, const scalar_t* __restrict dm_row,
                  const scalar_t* __restrict dgt, const scalar_t* __restrict dct,
                  const scalar_t* __restrict peephole, scalar_t* __restrict dz, scalar_t* __restrict dc_row,
                  int64_t hidden) {
  for (int64_t j = 0; j < hidden; ++j) {
    const scalar_t i = gates[j], f = gates[hidden + j], g = gates[2 * hidden + j], o = gates[3 * hidden + j];
    const scalar_t c = cells[j], cp = c_prev[j];
    const scalar_t th = tanh_(c);
    const scalar_t dm = dm_row[j];
    const scalar_t d_o = dm * th + dgt[3 * hidden + j];
    scalar_t dc = dc_row[j] + dm * o * (scalar_t(1) - th * th) + dct[j];
    const scalar_t dzo = d_o * o * (scalar_t(1) - o);
    if constexpr (Peephole) dc += dzo * peephole[2 * hidden + j];
    scalar_t di = dc * g + dgt[j];
    const scalar_t dg = dc * i + dgt[2 * hidden + j];
    const scalar_t df = dc * cp + dgt[hidden + j];
    scalar_t dzf = 0;
    if constexpr (Coupled) {
      di -= df;  // f = 1 - i
    } else {
      dzf = df * f * (scalar_t(1) - f);
    }
    const scalar_t dzi = di * i * (scalar_t(1) - i);
    const scalar_t dzg = dg * (scalar_t(1) - g * g);
    dz[j] = dzi;
    dz[hidden + j] = dzf;
    dz[2 * hidden + j] = dzg;
    dz[3 * hidden + j] = dzo;
    scalar_t dcp = dc * f;
    if constexpr (Peephole) dcp += dzi * peephole[j] + dzf * peephole[hidden + j];
    dc_row[j] = dcp;
  }
}

// Batch rows [begin, end) of one step's backward; padded rows pass the state through.
template <typename scalar_t, bool Peephole, bool Coupled>
void backward_rows(const scalar_t* gates, const scalar_t* cells, const scalar_t* c_prev,
                   const scalar_t* d_hidden_pre, const scalar_t* d_gates_trace, const scalar_t* d_cells_trace,
                   const scalar_t* peephole, scalar_t* dz, scalar_t* dc_next, int64_t hidden,
                   const int64_t* lengths, int64_t t, int64_t begin, int64_t end) {
  for (int64_t b = begin; b < end; ++b) {
    const int64_t wide = b * 4 * hidden, narrow = b * hidden;
    if (!is_valid(lengths, b, t)) {
      std::fill(dz + wide, dz + wide + 4 * hidden, scalar_t(0));
      continue;
    }
    backward_row<scalar_t, Peephole, Coupled>(gates + wide, cells + narrow, c_prev + narrow, d_hidden_pre + narrow,
                                              d_gates_trace + wide, d_cells_trace + narrow, peephole, dz + wide,
                                              dc_next + narrow, hidden);
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
                              const LayerNormWeights& w, const scalar_t* dm, const scalar_t* dgt, const scalar_t* dct,
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
    backward_row_ln<scalar_t, Peephole, Coupled>(
        gates + wide, c_prev + narrow, c_hat + narrow, rstd_c[b], r_hat + wide, rstd_r[b], dm + narrow,
        dgt + wide, dct + narrow, peephole, w.g_hh.data_ptr<scalar_t>(), w.g_c.data_ptr<scalar_t>(),
        w.b_c.data_ptr<scalar_t>(), dz + wide, dc_next + narrow, dc_ln + narrow, dr + wide, hidden);
  }
}

// Returns {dZ (T,B,4H) = d input_gates, dh0 (B,P), dc0 (B,H), dH_total (T,B,P)}, where dH_total
// is dL/dh_t including the recurrent part (for dW_hr = dH_total^T M); then, for layer norm,
// {dR (T,B,4H) = d(W_hh h_{t-1}), dC_ln (T,B,H) = d(LN(c) g_c + b_c)} (empty otherwise).
std::vector<torch::Tensor> fused_backward(torch::Tensor d_hiddens, torch::Tensor d_gates_trace,
                                          torch::Tensor d_cells_trace, torch::Tensor dh_n, torch::Tensor dc_n,
                                          torch::Tensor gates, torch::Tensor cells, torch::Tensor c_prev,
                                          torch::Tensor w_hh, torch::Tensor w_hr, torch::Tensor peephole,
                                          torch::Tensor ln_g_hh, torch::Tensor ln_g_c, torch::Tensor ln_b_c,
                                          torch::Tensor r_hat, torch::Tensor rstd_r, torch::Tensor c_hat,
                                          torch::Tensor rstd_c, torch::Tensor lengths, bool reverse, bool coupled) {
  const LayerNormWeights ln{ln_g_hh, ln_g_c, ln_b_c};
  const LayerNormSaved saved{r_hat, rstd_r, c_hat, rstd_c};
  auto d_rec = ln.on() ? torch::empty_like(gates) : torch::Tensor();
  auto d_cell_ln = ln.on() ? torch::empty_like(cells) : torch::Tensor();
  const int64_t steps = gates.size(0), batch = gates.size(1), hidden = cells.size(2);
  const bool project = w_hr.defined() && w_hr.numel() > 0;
  const int64_t width = dh_n.size(1);
  auto dz = torch::empty_like(gates);
  auto dh_total = torch::empty({steps, batch, width}, dh_n.options());
  auto dh_next = dh_n.clone();
  auto dc_next = dc_n.clone();
  auto dh_recurrent = torch::empty_like(dh_n);
  auto d_hidden_pre = project ? torch::empty({batch, hidden}, dc_n.options()) : torch::Tensor();
  const int64_t* len_ptr = lengths.numel() ? lengths.data_ptr<int64_t>() : nullptr;
  const auto options = dc_n.options();
  const int64_t wide = batch * 4 * hidden, narrow = batch * hidden, outer = batch * width;
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "fused_backward", [&] {
    const scalar_t* peep = peephole.numel() ? peephole.data_ptr<scalar_t>() : nullptr;
    scalar_t* dh_run = dh_next.data_ptr<scalar_t>();
    scalar_t* dh_rec = dh_recurrent.data_ptr<scalar_t>();
    scalar_t* dc_ptr = dc_next.data_ptr<scalar_t>();
    for (int64_t k = steps - 1; k >= 0; --k) {
      const int64_t t = time_index(k, steps, reverse);
      scalar_t* dh = dh_total.data_ptr<scalar_t>() + t * outer;  // (B, P)
      const scalar_t* d_out = d_hiddens.data_ptr<scalar_t>() + t * outer;
      for (int64_t b = 0; b < batch; ++b) {
        // Padded rows: the output there is a constant 0, only the state passes through.
        const bool valid = is_valid(len_ptr, b, t);
        for (int64_t j = b * width; j < (b + 1) * width; ++j) dh[j] = (valid ? d_out[j] : scalar_t(0)) + dh_run[j];
      }
      const scalar_t* dm_ptr = dh;
      if (project) {
        gemm_b(d_hidden_pre.data_ptr<scalar_t>(), dh, w_hr.data_ptr<scalar_t>(), batch, width, hidden, options);
        dm_ptr = d_hidden_pre.data_ptr<scalar_t>();
      }
      const scalar_t* dgt = d_gates_trace.data_ptr<scalar_t>() + t * wide;
      const scalar_t* dct = d_cells_trace.data_ptr<scalar_t>() + t * narrow;
      const scalar_t* g_ptr = gates.data_ptr<scalar_t>() + t * wide;
      const scalar_t* c_ptr = cells.data_ptr<scalar_t>() + t * narrow;
      const scalar_t* cp_ptr = c_prev.data_ptr<scalar_t>() + t * narrow;
      scalar_t* dz_ptr = dz.data_ptr<scalar_t>() + t * wide;
      const scalar_t* d_pre = dz_ptr;  // gradient of W_hh h_{t-1}
      if (ln.on()) {
        scalar_t* dr_ptr = d_rec.data_ptr<scalar_t>() + t * wide;
        LayerNormStep<scalar_t> step{saved.r_hat.data_ptr<scalar_t>() + t * wide,
                                     saved.c_hat.data_ptr<scalar_t>() + t * narrow,
                                     saved.rstd_r.data_ptr<scalar_t>() + t * batch,
                                     saved.rstd_c.data_ptr<scalar_t>() + t * batch};
        scalar_t* dcl_ptr = d_cell_ln.data_ptr<scalar_t>() + t * narrow;
        dispatch_variant(peep != nullptr, coupled, [&](auto peephole_flag, auto coupled_flag) {
          at::parallel_for(0, batch, grain(hidden), [&](int64_t begin, int64_t end) {
            layer_norm_backward_rows<scalar_t, decltype(peephole_flag)::value, decltype(coupled_flag)::value>(
                g_ptr, cp_ptr, step, ln, dm_ptr, dgt, dct, peep, dz_ptr, dc_ptr, dcl_ptr, dr_ptr, hidden, len_ptr,
                t, begin, end);
          });
        });
        d_pre = dr_ptr;
      } else {
        dispatch_variant(peep != nullptr, coupled, [&](auto peephole_flag, auto coupled_flag) {
          at::parallel_for(0, batch, grain(hidden), [&](int64_t begin, int64_t end) {
            backward_rows<scalar_t, decltype(peephole_flag)::value, decltype(coupled_flag)::value>(
                g_ptr, c_ptr, cp_ptr, dm_ptr, dgt, dct, peep, dz_ptr, dc_ptr, hidden, len_ptr, t, begin, end);
          });
        });
      }
      gemm_b(dh_rec, d_pre, w_hh.data_ptr<scalar_t>(), batch, 4 * hidden, width, options);  // (B, P)
      for (int64_t b = 0; b < batch; ++b) {
        scalar_t* row = dh_run + b * width;
        if (is_valid(len_ptr, b, t)) std::copy(dh_rec + b * width, dh_rec + (b + 1) * width, row);
        else std::fill(dh + b * width, dh + (b + 1) * width, scalar_t(0));  // no weight gradient from padding
      }
    }
  });
  return {dz, dh_next, dc_next, dh_total, d_rec, d_cell_ln};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &fused_forward, "fused LSTM layer-direction forward");
  m.def("backward", &fused_backward, "fused LSTM layer-direction backward");
}
