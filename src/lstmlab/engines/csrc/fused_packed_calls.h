// fused_forward's and fused_backward's calls of the packed-weight, thread-team loops
// (fused_recurrent.h; with layer norm fused_recurrent_ln.h): the cells without projection
// or zoneout. They fill the loop structs from the call's tensors and pick the variant.
#pragma once

#include <torch/extension.h>

#include <vector>

#include "fused_arguments.h"
#include "fused_layer_norm.h"
#include "fused_math.h"
#include "fused_packed.h"
#include "fused_recurrent.h"
#include "fused_recurrent_ln.h"

namespace lstmlab_fused {

// The packed-weight, thread-team loops run the cells without projection or zoneout; the
// others take the per-step loops (fused_per_step.h).
inline bool packed_loops(bool project, bool zone_c, bool zone_h) { return !project && !zone_c && !zone_h; }

template <typename scalar_t>
const scalar_t* data_or_null(const torch::Tensor& t) {
  return t.numel() ? t.data_ptr<scalar_t>() : nullptr;
}

inline const int64_t* lengths_or_null(const torch::Tensor& lengths) {
  return lengths.numel() ? lengths.data_ptr<int64_t>() : nullptr;
}

// pack_forward(w, hidden), or packed[index] where the caller packed it already (a
// non-empty tensor: `pack_forward_weight`'s result for this w, cached by
// engines/fused_extension.py for calls without autograd, whose weights rarely change).
template <typename scalar_t>
torch::Tensor packed_or_pack(const std::vector<torch::Tensor>& packed, size_t index, const torch::Tensor& w,
                             int64_t hidden) {
  if (index >= packed.size() || !packed[index].numel()) return pack_forward<scalar_t>(w, hidden);
  const auto& given = packed[index];
  TORCH_CHECK(given.scalar_type() == w.scalar_type() && given.is_contiguous() &&
                  given.sizes() == at::IntArrayRef({blocks_of<scalar_t>(hidden), w.size(1), 4, kLanes<scalar_t>}),
              "fused_forward: a packed weight must be pack_forward_weight's result for W of sizes ", w.sizes(),
              ", got sizes ", given.sizes());
  return given;
}

// The layer-norm forward loop (input_gates holds u_hat; outputs contiguous).
template <typename scalar_t>
void forward_packed_ln(const ForwardInputs& in, const LayerNormWeights& ln, ForwardOutputs& out, bool keep) {
  const int64_t steps = out.hidden_pre.size(0), batch = out.hidden_pre.size(1), hidden = out.c_n.size(1);
  const torch::Tensor packed = packed_or_pack<scalar_t>(in.packed_weights, 0, in.w_hh, hidden);
  const LayerNormSaved& saved = out.saved;
  LayerNormForwardLoop<scalar_t> loop{in.input_gates.data_ptr<scalar_t>(),
                                          out.hidden_pre.data_ptr<scalar_t>(),
                                          out.gates.data_ptr<scalar_t>(),
                                          out.cells.data_ptr<scalar_t>(),
                                          saved.r_hat.data_ptr<scalar_t>(),
                                          saved.rstd_r.data_ptr<scalar_t>(),
                                          saved.c_hat.data_ptr<scalar_t>(),
                                          saved.rstd_c.data_ptr<scalar_t>(),
                                          out.h_n.data_ptr<scalar_t>(),
                                          out.c_n.data_ptr<scalar_t>(),
                                          data_or_null<scalar_t>(in.peephole),
                                          &ln,
                                          packed.data_ptr<scalar_t>(),
                                          lengths_or_null(in.lengths),
                                          steps,
                                          batch,
                                          hidden,
                                          in.reverse,
                                          keep};
  dispatch_variant(in.peephole.numel() > 0, (in.cell & kCoupled) != 0, [&](auto peephole_flag, auto coupled_flag) {
    ln_forward_loop<scalar_t, decltype(peephole_flag)::value, decltype(coupled_flag)::value>(loop);
  });
}

// The loop without layer norm: it adds the bias, and with input_gates empty computes the
// input share in its tile. h alternates between h_n and h_other step by step.
template <typename scalar_t>
void forward_packed_plain(const ForwardInputs& in, ForwardOutputs& out, torch::Tensor& h_other, bool keep) {
  const int64_t steps = out.hidden_pre.size(0), batch = out.hidden_pre.size(1), hidden = out.c_n.size(1);
  const bool fuse_input = in.input_gates.numel() == 0;
  const torch::Tensor packed = packed_or_pack<scalar_t>(in.packed_weights, 0, in.w_hh, hidden);
  const torch::Tensor packed_in =
      fuse_input ? packed_or_pack<scalar_t>(in.packed_weights, 1, in.w_ih, hidden) : torch::Tensor();
  ForwardLoop<scalar_t> loop{fuse_input ? nullptr : in.input_gates.data_ptr<scalar_t>(),
                             fuse_input ? in.x.data_ptr<scalar_t>() : nullptr,
                             fuse_input ? packed_in.data_ptr<scalar_t>() : nullptr,
                             in.bias.data_ptr<scalar_t>(),
                             fuse_input ? in.x.size(2) : 0,
                             out.gates.data_ptr<scalar_t>(),
                             out.cells.data_ptr<scalar_t>(),
                             out.hidden_pre.data_ptr<scalar_t>(),
                             out.gates.stride(1),
                             out.cells.stride(1),
                             out.hidden_pre.stride(1),
                             {out.h_n.data_ptr<scalar_t>(), h_other.data_ptr<scalar_t>()},
                             out.c_n.data_ptr<scalar_t>(),
                             data_or_null<scalar_t>(in.peephole),
                             packed.data_ptr<scalar_t>(),
                             lengths_or_null(in.lengths),
                             steps, batch, hidden, in.reverse, keep};
  dispatch_cell(in.peephole.numel() > 0, in.cell, [&](auto peephole_flag, auto cell_bits) {
    forward_loop<scalar_t, decltype(peephole_flag)::value, decltype(cell_bits)::value>(loop);
  });
}

// Forward on the packed loops: fills out's gates, cells, hidden_pre (= hiddens, P = H),
// h_n and c_n (in: h0 and c0), with layer norm also out.saved. keep: every step's gates
// and cells (else one step's, as scratch).
inline void forward_packed(const ForwardInputs& in, const LayerNormWeights& ln, ForwardOutputs& out, bool keep) {
  const bool fuse_input = in.input_gates.numel() == 0;
  TORCH_CHECK(!fuse_input || !ln.on(), "fused_forward: layer norm needs input_gates (u_hat)");
  TORCH_CHECK(in.bias.numel() == in.w_hh.size(0), "fused_forward: the packed loops add the bias (4H) themselves");
  TORCH_CHECK(!ln.on() || (out.gates.is_contiguous() && out.cells.is_contiguous() && out.hidden_pre.is_contiguous()),
              "fused_forward: the layer-norm loop writes contiguous outputs only");
  auto h_other = ln.on() ? out.h_n : torch::empty_like(out.h_n);
  AT_DISPATCH_FLOATING_TYPES(out.hidden_pre.scalar_type(), "forward_packed", [&] {
    if (ln.on()) forward_packed_ln<scalar_t>(in, ln, out, keep);
    else forward_packed_plain<scalar_t>(in, out, h_other, keep);
  });
  if (!ln.on() && out.hidden_pre.size(0) % 2) out.h_n.copy_(h_other);  // the last step wrote the other buffer
}

// The trace's gate gradients d (4 tensors, each (T,B,H) contiguous, or empty for none) as
// GateGrads; `zeros` (B,H) stands in for the empty ones.
template <typename scalar_t>
GateGrads<scalar_t> gate_grads(const std::vector<torch::Tensor>& d, const torch::Tensor& zeros) {
  TORCH_CHECK(d.size() == 4, "fused_backward: expected 4 gate gradients (i, f, g, o), got ", d.size());
  GateGrads<scalar_t> grads;
  grads.hidden = zeros.size(1);
  for (int k = 0; k < 4; ++k) {
    const bool has = d[k].numel() > 0;
    TORCH_CHECK(!has || (d[k].is_contiguous() && d[k].size(1) == zeros.size(0) && d[k].size(2) == zeros.size(1)),
                "fused_backward: a gate gradient must be a contiguous (T, B, H) tensor");
    grads.base[k] = (has ? d[k] : zeros).data_ptr<scalar_t>();
    grads.step[k] = has ? zeros.numel() : 0;
  }
  return grads;
}

// The trace's gradients as the loops read them: absent ones are a (B,H) zero block that
// every step reads (step stride 0).
template <typename scalar_t>
struct TraceGrads {
  torch::Tensor zeros;
  const scalar_t* zero_rows;  // zeros' (B, H) numbers
  GateGrads<scalar_t> gates;
  const scalar_t* cells;
  int64_t cells_step;

  TraceGrads(const BackwardInputs& in, int64_t batch, int64_t hidden)
      : zeros(torch::zeros({batch, hidden}, in.gates.options())), zero_rows(zeros.data_ptr<scalar_t>()),
        gates(gate_grads<scalar_t>(in.d_gates_trace, zeros)) {
    const bool has_cells = in.d_cells_trace.numel() > 0;
    cells = (has_cells ? in.d_cells_trace : zeros).data_ptr<scalar_t>();
    cells_step = has_cells ? batch * hidden : 0;
  }
};

template <typename scalar_t>
void backward_packed_ln(const BackwardInputs& in, const LayerNormWeights& ln, BackwardOutputs& out,
                        const TraceGrads<scalar_t>& trace, const torch::Tensor& packed) {
  const int64_t steps = in.gates.size(0), batch = in.gates.size(1), hidden = in.cells.size(2);
  auto c_prev = torch::empty_like(in.c0);
  const LayerNormSaved& saved = in.saved;
  LayerNormBackwardLoop<scalar_t> loop{in.d_hiddens.data_ptr<scalar_t>(),
                                           trace.gates,
                                           trace.cells,
                                           trace.cells_step,
                                           in.gates.data_ptr<scalar_t>(),
                                           in.cells.data_ptr<scalar_t>(),
                                           in.c0.data_ptr<scalar_t>(),
                                           c_prev.data_ptr<scalar_t>(),
                                           saved.r_hat.data_ptr<scalar_t>(),
                                           saved.rstd_r.data_ptr<scalar_t>(),
                                           saved.c_hat.data_ptr<scalar_t>(),
                                           saved.rstd_c.data_ptr<scalar_t>(),
                                           data_or_null<scalar_t>(in.peephole),
                                           &ln,
                                           packed.data_ptr<scalar_t>(),
                                           lengths_or_null(in.lengths),
                                           out.dz.data_ptr<scalar_t>(),
                                           out.d_rec.data_ptr<scalar_t>(),
                                           out.d_cell_ln.data_ptr<scalar_t>(),
                                           out.dh_total.data_ptr<scalar_t>(),
                                           out.dh0.data_ptr<scalar_t>(),
                                           out.dc0.data_ptr<scalar_t>(),
                                           steps,
                                           batch,
                                           hidden,
                                           in.reverse};
  dispatch_variant(in.peephole.numel() > 0, (in.cell & kCoupled) != 0, [&](auto peephole_flag, auto coupled_flag) {
    ln_backward_loop<scalar_t, decltype(peephole_flag)::value, decltype(coupled_flag)::value>(loop);
  });
}

template <typename scalar_t>
void backward_packed_plain(const BackwardInputs& in, BackwardOutputs& out, const TraceGrads<scalar_t>& trace,
                           const torch::Tensor& packed) {
  const int64_t steps = in.gates.size(0), batch = in.gates.size(1), hidden = in.cells.size(2);
  BackwardLoop<scalar_t> loop{in.d_hiddens.data_ptr<scalar_t>(),
                              trace.gates,
                              trace.cells,
                              trace.cells_step,
                              in.gates.data_ptr<scalar_t>(),
                              in.cells.data_ptr<scalar_t>(),
                              in.c0.data_ptr<scalar_t>(),
                              data_or_null<scalar_t>(in.peephole),
                              packed.data_ptr<scalar_t>(),
                              lengths_or_null(in.lengths),
                              out.dz.data_ptr<scalar_t>(),
                              out.dh_total.data_ptr<scalar_t>(),
                              out.dh0.data_ptr<scalar_t>(),
                              out.dc0.data_ptr<scalar_t>(),
                              steps, batch, hidden, in.reverse};
  dispatch_cell(in.peephole.numel() > 0, in.cell, [&](auto peephole_flag, auto cell_bits) {
    backward_loop<scalar_t, decltype(peephole_flag)::value, decltype(cell_bits)::value>(loop);
  });
}

// Backward on the packed loops: fills out's dz, dh_total (and with layer norm d_rec and
// d_cell_ln) and turns dh0, dc0 (in: dL/dh_n, dL/dc_n) into dL/dh_0, dL/dc_0. c_{t-1}
// comes from cells and c0 (in.c_prev is not read).
inline void backward_packed(const BackwardInputs& in, const LayerNormWeights& ln, BackwardOutputs& out) {
  const int64_t batch = in.gates.size(1), hidden = in.cells.size(2);
  AT_DISPATCH_FLOATING_TYPES(in.gates.scalar_type(), "backward_packed", [&] {
    const TraceGrads<scalar_t> trace(in, batch, hidden);
    const torch::Tensor packed = pack_backward<scalar_t>(in.w_hh, backward_split<scalar_t>(batch, hidden).parts);
    if (ln.on()) backward_packed_ln<scalar_t>(in, ln, out, trace, packed);
    else backward_packed_plain<scalar_t>(in, out, trace, packed);
  });
}

}  // namespace lstmlab_fused
