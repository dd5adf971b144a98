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

// Returns {gates (T,B,4H), C (T,B,H), M (T,B,H), H (T,B,P), h_n (B,P), c_n (B,H)}, then for
// layer norm {r_hat (T,B,4H), rstd_r (T,B), c_hat (T,B,H), rstd_c (T,B)} (empty otherwise).
std::vector<torch::Tensor> fused_forward(torch::Tensor input_gates, torch::Tensor h0, torch::Tensor c0,
                                         torch::Tensor w_hh, torch::Tensor w_hr, torch::Tensor peephole,
                                         torch::Tensor ln_g_hh, torch::Tensor ln_g_c, torch::Tensor ln_b_c,
                                         torch::Tensor lengths, bool reverse, bool coupled) {
  const LayerNormWeights ln{ln_g_hh, ln_g_c, ln_b_c};
  const int64_t steps = input_gates.size(0), batch = input_gates.size(1), hidden = c0.size(1);
  const bool project = w_hr.defined() && w_hr.numel() > 0;
  const int64_t width = h0.size(1);
  auto gates = torch::empty_like(input_gates);
  auto cells = torch::empty({steps, batch, hidden}, c0.options());
  auto hidden_pre = torch::empty({steps, batch, hidden}, c0.options());
  auto hiddens = project ? torch::empty({steps, batch, width}, h0.options()) : hidden_pre;
  auto h_state = h0.clone();
  auto c_state = c0.clone();
  auto w_hh_t = w_hh.t();
  auto w_hr_t = project ? w_hr.t() : w_hr;
  const int64_t* len_ptr = lengths.numel() ? lengths.data_ptr<int64_t>() : nullptr;
  LayerNormSaved saved;
  if (ln.on()) {
    saved = {torch::empty_like(input_gates), torch::empty({steps, batch}, c0.options()),
             torch::empty({steps, batch, hidden}, c0.options()), torch::empty({steps, batch}, c0.options())};
  }
  AT_DISPATCH_FLOATING_TYPES(input_gates.scalar_type(), "fused_forward", [&] {
    const scalar_t* peep = peephole.numel() ? peephole.data_ptr<scalar_t>() : nullptr;
    for (int64_t k = 0; k < steps; ++k) {
      const int64_t t = time_index(k, steps, reverse);
      auto step_gates = gates[t];
      StepPointers<scalar_t> p{step_gates.data_ptr<scalar_t>(), cells[t].data_ptr<scalar_t>(),
                               hidden_pre[t].data_ptr<scalar_t>(), c_state.data_ptr<scalar_t>(), peep};
      if (ln.on()) {
        auto r_t = saved.r_hat[t];
        at::mm_out(r_t, h_state, w_hh_t);  // (B, 4H), normalised in place below
        dispatch_variant(peep != nullptr, coupled, [&](auto peephole_flag, auto coupled_flag) {
          at::parallel_for(0, batch, grain(hidden), [&](int64_t begin, int64_t end) {
            layer_norm_rows<scalar_t, decltype(peephole_flag)::value, decltype(coupled_flag)::value>(
                input_gates[t].data_ptr<scalar_t>(), p, r_t.data_ptr<scalar_t>(),
                saved.c_hat[t].data_ptr<scalar_t>(), saved.rstd_r[t].data_ptr<scalar_t>(),
                saved.rstd_c[t].data_ptr<scalar_t>(), ln, hidden, len_ptr, t, begin, end);
          });
        });
      } else {
        at::addmm_out(step_gates, input_gates[t], h_state, w_hh_t);  // (B, 4H)
        dispatch_variant(peep != nullptr, coupled, [&](auto peephole_flag, auto coupled_flag) {
          at::parallel_for(0, batch, grain(hidden), [&](int64_t begin, int64_t end) {
            activate_rows<scalar_t, decltype(peephole_flag)::value, decltype(coupled_flag)::value>(
                p, hidden, len_ptr, t, begin, end);
          });
        });
      }
      if (project) {
        auto step_hidden = hiddens[t];
        at::mm_out(step_hidden, hidden_pre[t], w_hr_t);  // (B, P); padded rows are 0
      }
      update_hidden<scalar_t>(h_state.data_ptr<scalar_t>(), hiddens[t].data_ptr<scalar_t>(), batch, width,
                              len_ptr, t);
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

// One layer-norm backward step for batch rows [begin, end); padded rows pass the state through.
template <typename scalar_t, bool Peephole, bool Coupled>
void layer_norm_backward_rows(const scalar_t* gates, const scalar_t* c_prev, const LayerNormSaved& saved,
                              const LayerNormWeights& w, const scalar_t* dm, const scalar_t* dgt, const scalar_t* dct,
                              const scalar_t* peephole, scalar_t* dz, scalar_t* dc_next, scalar_t* dc_ln,
                              scalar_t* dr, int64_t hidden, const int64_t* lengths, int64_t t, int64_t begin,
                              int64_t end) {
  const scalar_t* r_hat = saved.r_hat[t].data_ptr<scalar_t>();
  const scalar_t* c_hat = saved.c_hat[t].data_ptr<scalar_t>();
  const scalar_t* rstd_r = saved.rstd_r[t].data_ptr<scalar_t>();
  const scalar_t* rstd_c = saved.rstd_c[t].data_ptr<scalar_t>();
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
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "fused_backward", [&] {
    const scalar_t* peep = peephole.numel() ? peephole.data_ptr<scalar_t>() : nullptr;
    for (int64_t k = steps - 1; k >= 0; --k) {
      const int64_t t = time_index(k, steps, reverse);
      auto dh = dh_total[t];
      at::add_out(dh, d_hiddens[t], dh_next);  // (B, P)
      if (len_ptr) {  // padded rows: the output there is a constant 0, only the state passes through
        for (int64_t b = 0; b < batch; ++b)
          if (!is_valid(len_ptr, b, t)) dh[b].copy_(dh_next[b]);
      }
      auto dm = dh;
      if (project) {
        at::mm_out(d_hidden_pre, dh, w_hr);  // (B, H)
        dm = d_hidden_pre;
      }
      const scalar_t* dgt = d_gates_trace[t].data_ptr<scalar_t>();
      const scalar_t* dct = d_cells_trace[t].data_ptr<scalar_t>();
      auto dz_t = dz[t];
      const scalar_t* g_ptr = gates[t].data_ptr<scalar_t>();
      const scalar_t* c_ptr = cells[t].data_ptr<scalar_t>();
      const scalar_t* cp_ptr = c_prev[t].data_ptr<scalar_t>();
      const scalar_t* dm_ptr = dm.data_ptr<scalar_t>();
      scalar_t* dz_ptr = dz_t.data_ptr<scalar_t>();
      scalar_t* dc_ptr = dc_next.data_ptr<scalar_t>();
      if (ln.on()) {
        scalar_t* dr_ptr = d_rec[t].data_ptr<scalar_t>();
        scalar_t* dcl_ptr = d_cell_ln[t].data_ptr<scalar_t>();
        dispatch_variant(peep != nullptr, coupled, [&](auto peephole_flag, auto coupled_flag) {
          at::parallel_for(0, batch, grain(hidden), [&](int64_t begin, int64_t end) {
            layer_norm_backward_rows<scalar_t, decltype(peephole_flag)::value, decltype(coupled_flag)::value>(
                g_ptr, cp_ptr, saved, ln, dm_ptr, dgt, dct, peep, dz_ptr, dc_ptr, dcl_ptr, dr_ptr, hidden, len_ptr,
                t, begin, end);
          });
        });
        at::mm_out(dh_recurrent, d_rec[t], w_hh);  // (B, P)
      } else {
        dispatch_variant(peep != nullptr, coupled, [&](auto peephole_flag, auto coupled_flag) {
          at::parallel_for(0, batch, grain(hidden), [&](int64_t begin, int64_t end) {
            backward_rows<scalar_t, decltype(peephole_flag)::value, decltype(coupled_flag)::value>(
                g_ptr, c_ptr, cp_ptr, dm_ptr, dgt, dct, peep, dz_ptr, dc_ptr, hidden, len_ptr, t, begin, end);
          });
        });
        at::mm_out(dh_recurrent, dz_t, w_hh);  // (B, P)
      }
      if (len_ptr) {
        for (int64_t b = 0; b < batch; ++b) {
          if (is_valid(len_ptr, b, t)) dh_next[b].copy_(dh_recurrent[b]);
          else dh_total[t][b].zero_();  // no weight gradient from padded rows
        }
      } else {
        dh_next.copy_(dh_recurrent);
      }
    }
  });
  return {dz, dh_next, dc_next, dh_total, d_rec, d_cell_ln};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &fused_forward, "fused LSTM layer-direction forward");
  m.def("backward", &fused_backward, "fused LSTM layer-direction backward");
}
