// Fused CPU LSTM: the time loop of one layer and direction, forward and backward,
// in C++, with the gate math done in one pass over each step's (B, 4H) block.
//
// The math is lstmlab/cell.py's (plain, peephole, coupled, layer norm, zoneout;
// projection; valid lengths). Cells without projection or zoneout run the packed-weight
// loops with one thread team (fused_packed_calls.h -> fused_recurrent.h,
// fused_recurrent_ln.h); the others the per-step loops (fused_per_step.h). Python
// (engines/fused_direction.py) does the big GEMMs around the loop (input gates before it
// where the loop does not compute them, dW and dX after it).
//
// Layout: gates (T, B, 4H) hold the post-activation (i | f | g | o); C (T, B, H) the
// cell states; M (T, B, H) = o * tanh(c) (the unprojected hidden state); H (T, B, P).
// Padded steps (t >= length) hold zeros and leave the state unchanged.
// The calls' arguments and results are structs (fused_arguments.h); results a call does
// not make (layer norm's for the other cells, ...) stay undefined: None in Python.

#include <torch/extension.h>

#include <vector>

#include "fused_arguments.h"
#include "fused_buffers.h"
#include "fused_input_norm.h"
#include "fused_packed_calls.h"
#include "fused_per_step.h"
#include "fused_step.h"

namespace {

using namespace lstmlab_fused;

// `out` when given (not empty): a (T, B, n) tensor of `sizes` whose rows may lie further
// apart than n, but whose steps hold B rows each; else a new pooled buffer.
torch::Tensor output_buffer(const torch::Tensor& out, at::IntArrayRef sizes, const torch::TensorOptions& options) {
  if (!out.numel()) return pooled_empty(sizes, options);
  TORCH_CHECK(out.sizes() == sizes && out.dtype() == options.dtype() && out.stride(2) == 1 &&
                  out.stride(1) >= sizes[2] && out.stride(0) == sizes[1] * out.stride(1),
              "fused_forward: an out buffer must be ", sizes, " with unit stride in its last dimension and B rows "
              "per step, got ", out.sizes(), " with strides ", out.strides());
  return out;
}

// The forward's result buffers. keep false: gates, cells and the LN statistics hold one
// step (scratch). Without layer norm, the packed loops keeping the trace write the gates
// over input_gates (it is consumed), which saves a (T, B, 4H) buffer and a third of its
// traffic: they read each of its numbers once, right before writing that gate there.
ForwardOutputs forward_buffers(const ForwardInputs& in, const LayerNormWeights& ln, bool packed, bool keep) {
  const auto& sized = in.input_gates.numel() ? in.input_gates : in.x;
  const int64_t steps = sized.size(0), batch = sized.size(1), hidden = in.c0.size(1), kept = keep ? steps : 1;
  const auto options = in.c0.options();
  std::vector<torch::Tensor> out = in.out;
  TORCH_CHECK(out.empty() || (out.size() == 3 && packed && !ln.on()),
              "fused_forward: out is {gates, cells, hiddens}, for the packed loops without layer norm");
  if (out.empty()) out.resize(3);
  const bool gates_in_place = packed && !ln.on() && keep && in.input_gates.numel() > 0 && !out[0].numel();
  TORCH_CHECK(!gates_in_place || (in.input_gates.is_contiguous() && in.input_gates.size(2) == 4 * hidden),
              "fused_forward: input_gates must be a contiguous (T, B, 4H) tensor");
  ForwardOutputs result;
  result.gates = gates_in_place ? in.input_gates : output_buffer(out[0], {kept, batch, 4 * hidden}, options);
  result.cells = output_buffer(out[1], {kept, batch, hidden}, options);
  result.hidden_pre = output_buffer(out[2], {steps, batch, hidden}, options);
  const bool project = in.w_hr.numel() > 0, zone_h = in.keep_h.numel() > 0;
  result.hiddens = (project || zone_h) ? pooled_empty({steps, batch, in.h0.size(1)}, options) : result.hidden_pre;
  // With zoneout the carried c_t differs from the cell's fresh value, which o, tanh and LN see.
  if (in.keep_c.numel()) result.cells_fresh = pooled_empty_like(result.cells);
  if (ln.on()) {
    result.saved = {pooled_empty_like(result.gates), torch::empty({kept, batch}, options),
                    pooled_empty({kept, batch, hidden}, options), torch::empty({kept, batch}, options)};
  }
  result.h_n = in.h0.clone();  // the running state: h_n, c_n at the end
  result.c_n = in.c0.clone();
  return result;
}

}  // namespace

// The forward of one layer-direction (see ForwardInputs for the arguments).
// keep_trace false (no trace, no backward): gates, C and the LN statistics may hold only
// one step (T = 1 in their shapes); M, H, h_n and c_n are complete.
// input_gates (T,B,4H): the packed loops without layer norm overwrite it with the gates
// when they keep the trace (it is consumed: pass a buffer nothing else reads).
// x (T,B,I), w_ih (4H,I): with input_gates empty, the loop computes the input share itself
// (cells without layer norm, projection or zoneout only). bias (4H): b_ih + b_hh, added in
// the loop (same cells, and layer norm), or empty when input_gates includes it.
// Layer norm: input_gates holds u_hat = LN(x W_ih^T) (input_layer_norm), and the loops add
// u_hat * ln_g_ih + bias themselves; ln_g_ih is empty for the other cells.
// out: empty, or {gates (T,B,4H), cells (T,B,H), hiddens (T,B,H)}, each empty or a buffer to
// write into instead of a new one, whose rows may lie further apart (one direction of a
// (T, B, D, ·) buffer); the packed loops of the cells without layer norm only.
// packed_weights: empty, or {W_hh packed, W_ih packed}, each empty or pack_forward_weight's
// result for that weight (W_ih: only when the loop computes the input share); the packed
// loops pack the others themselves.
ForwardOutputs fused_forward(const ForwardInputs& in) {
  const LayerNormWeights ln{in.ln_g_hh, in.ln_g_c, in.ln_b_c, in.ln_g_ih, in.bias};
  const bool packed = packed_loops(in.w_hr.numel() > 0, in.keep_c.numel() > 0, in.keep_h.numel() > 0);
  // Without trace and autograd the packed loops keep one step of gates, cells and LN
  // statistics (scratch): the full (T, B, 4H) would cost memory traffic and page faults.
  const bool keep = in.keep_trace || !packed;
  ForwardOutputs out = forward_buffers(in, ln, packed, keep);
  if (packed) forward_packed(in, ln, out, keep);
  else forward_per_step(in, ln, out);
  return out;
}

// The backward of one layer-direction (see BackwardInputs, BackwardOutputs). c_prev
// (T,B,H): c_{t-1} of each step, read only by the per-step loops (projection or zoneout;
// the packed loops derive it from cells and c0: pass an empty tensor there).
// d_gates_trace: the trace's gradients of i, f, g, o, each (T,B,H) or empty;
// d_cells_trace (T,B,H) or empty (empty: no gradient through the trace there).
BackwardOutputs fused_backward(const BackwardInputs& in) {
  const LayerNormWeights ln{in.ln_g_hh, in.ln_g_c, in.ln_b_c};
  BackwardOutputs out;
  out.dz = pooled_empty_like(in.gates);
  out.dh_total = pooled_empty({in.gates.size(0), in.gates.size(1), in.dh_n.size(1)}, in.dh_n.options());
  out.dh0 = in.dh_n.clone();  // the running gradients: dL/dh_0, dL/dc_0 at the end
  out.dc0 = in.dc_n.clone();
  if (ln.on()) {
    out.d_rec = pooled_empty_like(in.gates);
    out.d_cell_ln = pooled_empty_like(in.cells);
  }
  if (packed_loops(in.w_hr.numel() > 0, in.keep_c.numel() > 0, in.keep_h.numel() > 0)) backward_packed(in, ln, out);
  else backward_per_step(in, ln, out);
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", [](const py::tuple& inputs) {
    return to_tuple(fused_forward(from_tuple<ForwardInputs>(inputs, "fused_forward")));
  }, "fused LSTM layer-direction forward: ForwardInputs -> ForwardOutputs, as tuples (fused_arguments.h)");
  m.def("backward", [](const py::tuple& inputs) {
    return to_tuple(fused_backward(from_tuple<BackwardInputs>(inputs, "fused_backward")));
  }, "fused LSTM layer-direction backward: BackwardInputs -> BackwardOutputs, as tuples (fused_arguments.h)");
  m.def("field_names", [](const std::string& name) {
    if (name == "ForwardInputs") return field_names<ForwardInputs>();
    if (name == "ForwardOutputs") return field_names<ForwardOutputs>();
    if (name == "BackwardInputs") return field_names<BackwardInputs>();
    TORCH_CHECK(name == "BackwardOutputs", "field_names: no struct ", name);
    return field_names<BackwardOutputs>();
  }, "the fields of a struct of fused_arguments.h, in order");
  m.def("pack_forward_weight", [](const torch::Tensor& w, int64_t hidden) {
    TORCH_CHECK(w.dim() == 2 && w.size(0) == 4 * hidden, "pack_forward_weight: expected W of sizes (4H, ·) with H = ",
                hidden, ", got ", w.sizes());
    torch::Tensor packed;
    AT_DISPATCH_FLOATING_TYPES(w.scalar_type(), "pack_forward_weight",
                               [&] { packed = pack_forward<scalar_t>(w.contiguous(), hidden); });
    return packed;
  }, "W (4H, K) packed for the forward loops' tiles (fused_packed.h's pack_forward)");
  m.def("input_layer_norm", &input_layer_norm,
        "layer-norm cell's input share: u (N,4H) -> u_hat in place; returns rstd (fused_input_norm.h)");
  m.def("layer_norm_gradients", &layer_norm_gradients,
        "dL/du and the layer-norm gradients that are sums over rows, in one pass (fused_input_norm.h)");
  m.def("pooled_empty", [](std::vector<int64_t> sizes, const torch::Tensor& like) {
    return pooled_empty(sizes, like.options());
  }, "torch.empty(sizes) like `like`, its memory recycled through the buffer pool (fused_buffers.h)");
  m.def("release_buffers", [] { return buffer_pool().release(); }, "free the pool's cached blocks; returns bytes");
  m.def("buffer_pool_bytes", [] { return buffer_pool().cached(); }, "bytes the pool holds now");
  m.def("set_buffer_pool_limit", [](int64_t bytes) { buffer_pool().set_limit(bytes); },
        "most bytes the pool may hold (0: none)");
  lstmlab_fused::bind_stream(m);  // StepWeights, StreamState: the streaming step (fused_step.h)
}
