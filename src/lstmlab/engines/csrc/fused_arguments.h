// The arguments and results of the C++ forward and backward (fused_lstm.cpp), one struct
// each. engines/fused_extension.py has their Python twins: NamedTuples with the same
// fields in the same order (checked when the extension loads, see `field_names`).
// Python passes a NamedTuple, which is a tuple: `from_tuple` reads it item by item, as
// pybind11 reads positional arguments (so it costs no more than they did), and results
// go back as a tuple that Python wraps in its NamedTuple.
// Absent tensors are empty ones (numel 0) throughout.
#pragma once

#include <torch/extension.h>

#include <string>
#include <type_traits>
#include <vector>

#include "fused_layer_norm.h"

namespace lstmlab_fused {

namespace py = pybind11;

// What fused_forward reads (shapes: T steps, B rows, I inputs, H units, P = proj or H).
struct ForwardInputs {
  // The input share: input_gates (T,B,4H), or when empty the loop computes x (T,B,I) W_ih^T
  // (4H,I) itself; bias (4H), b_ih + b_hh when the loop adds it; ln_g_ih (4H): layer
  // norm's input gain (input_gates then holds u_hat = LN(x W_ih^T)).
  torch::Tensor input_gates, x, w_ih, bias, ln_g_ih;
  torch::Tensor h0, c0;                   // (B,P), (B,H)
  torch::Tensor w_hh, w_hr, peephole;     // (4H,P), (P,H), (3H)
  torch::Tensor ln_g_hh, ln_g_c, ln_b_c;  // (4H), (H), (H)
  torch::Tensor keep_c, keep_h;           // zoneout's keep weights, (T,B,H), (T,B,P)
  torch::Tensor lengths;                  // (B) int64 valid lengths
  bool reverse = false;
  int64_t cell = 0;                       // the cell's variant bits (kCoupled, kNoInputGate, ... in fused_math.h)
  bool keep_trace = true;                 // false: no trace, no backward (see fused_forward)
  // out: empty, or {gates, cells, hiddens} buffers to write into (see fused_forward);
  // packed_weights: empty, or {W_hh, W_ih} as pack_forward_weight packed them.
  std::vector<torch::Tensor> out, packed_weights;

  template <typename Self, typename Fn>
  static void each(Self& s, Fn&& fn) {
    fn("input_gates", s.input_gates), fn("x", s.x), fn("w_ih", s.w_ih), fn("bias", s.bias);
    fn("ln_g_ih", s.ln_g_ih), fn("h0", s.h0), fn("c0", s.c0), fn("w_hh", s.w_hh), fn("w_hr", s.w_hr);
    fn("peephole", s.peephole), fn("ln_g_hh", s.ln_g_hh), fn("ln_g_c", s.ln_g_c), fn("ln_b_c", s.ln_b_c);
    fn("keep_c", s.keep_c), fn("keep_h", s.keep_h), fn("lengths", s.lengths), fn("reverse", s.reverse);
    fn("cell", s.cell), fn("keep_trace", s.keep_trace), fn("out", s.out);
    fn("packed_weights", s.packed_weights);
  }
};

// What fused_forward returns. Layer norm's statistics are empty for the other cells,
// cells_fresh (the cells before zoneout) without zoneout on c.
struct ForwardOutputs {
  torch::Tensor gates, cells, hidden_pre, hiddens;  // (T,B,4H), (T,B,H), M (T,B,H), (T,B,P)
  torch::Tensor h_n, c_n;                           // (B,P), (B,H)
  LayerNormSaved saved;                             // r_hat, rstd_r, c_hat, rstd_c
  torch::Tensor cells_fresh;                        // (T,B,H)

  template <typename Self, typename Fn>
  static void each(Self& s, Fn&& fn) {
    fn("gates", s.gates), fn("cells", s.cells), fn("hidden_pre", s.hidden_pre), fn("hiddens", s.hiddens);
    fn("h_n", s.h_n), fn("c_n", s.c_n), fn("r_hat", s.saved.r_hat), fn("rstd_r", s.saved.rstd_r);
    fn("c_hat", s.saved.c_hat), fn("rstd_c", s.saved.rstd_c), fn("cells_fresh", s.cells_fresh);
  }
};

// What fused_backward reads: the gradients arriving, and what the forward saved.
struct BackwardInputs {
  torch::Tensor d_hiddens;                   // (T,B,P) dL/dH
  std::vector<torch::Tensor> d_gates_trace;  // 4 x (T,B,H) or empty: via the trace's i, f, g, o
  torch::Tensor d_cells_trace;               // (T,B,H) or empty: via the trace's c
  torch::Tensor dh_n, dc_n;                  // (B,P), (B,H)
  torch::Tensor gates, cells, c_prev, c0;    // the forward's; c_prev (T,B,H) for the per-step loops only
  torch::Tensor w_hh, w_hr, peephole;
  torch::Tensor ln_g_hh, ln_g_c, ln_b_c;
  LayerNormSaved saved;                      // r_hat, rstd_r, c_hat, rstd_c
  torch::Tensor keep_c, keep_h, cells_fresh;
  torch::Tensor lengths;
  bool reverse = false;
  int64_t cell = 0;

  template <typename Self, typename Fn>
  static void each(Self& s, Fn&& fn) {
    fn("d_hiddens", s.d_hiddens), fn("d_gates_trace", s.d_gates_trace), fn("d_cells_trace", s.d_cells_trace);
    fn("dh_n", s.dh_n), fn("dc_n", s.dc_n), fn("gates", s.gates), fn("cells", s.cells), fn("c_prev", s.c_prev);
    fn("c0", s.c0), fn("w_hh", s.w_hh), fn("w_hr", s.w_hr), fn("peephole", s.peephole), fn("ln_g_hh", s.ln_g_hh);
    fn("ln_g_c", s.ln_g_c), fn("ln_b_c", s.ln_b_c), fn("r_hat", s.saved.r_hat), fn("rstd_r", s.saved.rstd_r);
    fn("c_hat", s.saved.c_hat), fn("rstd_c", s.saved.rstd_c), fn("keep_c", s.keep_c), fn("keep_h", s.keep_h);
    fn("cells_fresh", s.cells_fresh), fn("lengths", s.lengths), fn("reverse", s.reverse);
    fn("cell", s.cell);
  }
};

// What fused_backward returns (d_rec and d_cell_ln for layer norm only).
struct BackwardOutputs {
  torch::Tensor dz;           // (T,B,4H) dL/dz, the gradient of the input share
  torch::Tensor dh0, dc0;     // (B,P), (B,H)
  torch::Tensor dh_total;     // (T,B,P) dL/dh_t with the recurrent part (for dW_hr)
  torch::Tensor d_rec;        // (T,B,4H) dL/d(W_hh h_{t-1})
  torch::Tensor d_cell_ln;    // (T,B,H) dL/d(LN(c) g_c + b_c)

  template <typename Self, typename Fn>
  static void each(Self& s, Fn&& fn) {
    fn("dz", s.dz), fn("dh0", s.dh0), fn("dc0", s.dc0), fn("dh_total", s.dh_total), fn("d_rec", s.d_rec);
    fn("d_cell_ln", s.d_cell_ln);
  }
};

// The field names of S in order (the Python NamedTuple's must be the same).
template <typename S>
std::vector<std::string> field_names() {
  S s;
  std::vector<std::string> names;
  S::each(s, [&](const char* name, auto&) { names.emplace_back(name); });
  return names;
}

// How many fields S has (counted once).
template <typename S>
size_t field_count() {
  static const size_t count = field_names<S>().size();
  return count;
}

// S from a tuple of its fields in order (a NamedTuple of engines/fused_extension.py).
template <typename S>
S from_tuple(const py::tuple& items, const char* what) {
  const size_t count = field_count<S>();
  TORCH_CHECK(items.size() == count, what, ": expected a tuple of ", count, " fields, got ", items.size());
  S s;
  size_t k = 0;
  S::each(s, [&](const char*, auto& field) { field = items[k++].template cast<std::decay_t<decltype(field)>>(); });
  return s;
}

// S's fields as a tuple, in order.
template <typename S>
py::tuple to_tuple(const S& s) {
  py::tuple items(field_count<S>());
  size_t k = 0;
  S::each(s, [&](const char*, const auto& field) { items[k++] = py::cast(field); });
  return items;
}

}  // namespace lstmlab_fused
