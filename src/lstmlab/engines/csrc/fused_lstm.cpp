// Fused CPU LSTM: the time loop of one layer and direction, forward and backward,
// in C++, with the gate math done in one pass over each step's (B, 4H) block.
//
// The math is lstmlab/cell.py's (plain, peephole, coupled; projection; valid lengths).
// Cells without projection or zoneout run the packed-weight loops with one thread team
// (fused_recurrent.h, fused_recurrent_ln.h); the others the per-step loops below, where
// each step is one GEMM (addmm into the step's gate block) plus an elementwise pass.
// Python (engines/fused.py) does the big GEMMs around the loop (input gates before it
// where the loop does not compute them, dW and dX after it).
//
// Layout: gates (T, B, 4H) hold the post-activation (i | f | g | o); C (T, B, H) the
// cell states; M (T, B, H) = o * tanh(c) (the unprojected hidden state); H (T, B, P).
// Padded steps (t >= length) hold zeros and leave the state unchanged.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "fused_buffers.h"
#include "fused_input_norm.h"
#include "fused_kernels.h"
#include "fused_layer_norm.h"
#include "fused_math.h"
#include "fused_recurrent.h"
#include "fused_recurrent_ln.h"
#include "fused_step.h"

namespace {

using namespace lstmlab_fused;

// The packed-weight, thread-team loops (fused_recurrent.h, fused_recurrent_ln.h) run the
// cells without projection or zoneout; the others take the per-step loops below.
bool packed_loops(bool project, bool zone_c, bool zone_h) { return !project && !zone_c && !zone_h; }

// pack_forward(w, hidden), or packed[index] where the caller packed it already (a
// non-empty tensor: `pack_forward_weight`'s result for this w, cached by engines/fused.py
// for calls without autograd, whose weights rarely change between calls).
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

// Forward on the packed loop: fills gates, cells, hiddens (T,B,H) and h_state, c_state.
// With layer norm also fills `saved`.
// The input share: input_gates (T,B,4H), or when that is empty, x (T,B,I) and w_ih; bias
// (4H, or empty when input_gates includes it) is added in the loop.
void forward_packed(const torch::Tensor& input_gates, const torch::Tensor& x, const torch::Tensor& w_ih,
                    const torch::Tensor& bias, const torch::Tensor& w_hh, const torch::Tensor& peephole,
                    const LayerNormWeights& ln, const torch::Tensor& lengths, torch::Tensor& gates,
                    torch::Tensor& cells, torch::Tensor& hiddens, torch::Tensor& h_state, torch::Tensor& c_state,
                    LayerNormSaved& saved, bool reverse, bool coupled, bool keep,
                    const std::vector<torch::Tensor>& packed_weights) {
  const int64_t steps = hiddens.size(0), batch = hiddens.size(1), hidden = c_state.size(1);
  const bool fuse_input = input_gates.numel() == 0;
  TORCH_CHECK(!fuse_input || !ln.on(), "fused_forward: layer norm needs input_gates (u_hat)");
  TORCH_CHECK(bias.numel() == w_hh.size(0), "fused_forward: the packed loops add the bias (4H) themselves");
  TORCH_CHECK(!ln.on() || (gates.is_contiguous() && cells.is_contiguous() && hiddens.is_contiguous()),
              "fused_forward: the layer-norm loop writes contiguous outputs only");
  auto h_other = ln.on() ? h_state : torch::empty_like(h_state);
  AT_DISPATCH_FLOATING_TYPES(hiddens.scalar_type(), "forward_packed", [&] {
    auto packed = packed_or_pack<scalar_t>(packed_weights, 0, w_hh, hidden);
    auto packed_in = fuse_input ? packed_or_pack<scalar_t>(packed_weights, 1, w_ih, hidden) : torch::Tensor();
    if (ln.on()) {
      LayerNormForwardLoop<scalar_t> loop{input_gates.data_ptr<scalar_t>(),
                                          hiddens.data_ptr<scalar_t>(),
                                          gates.data_ptr<scalar_t>(),
                                          cells.data_ptr<scalar_t>(),
                                          saved.r_hat.data_ptr<scalar_t>(),
                                          saved.rstd_r.data_ptr<scalar_t>(),
                                          saved.c_hat.data_ptr<scalar_t>(),
                                          saved.rstd_c.data_ptr<scalar_t>(),
                                          h_state.data_ptr<scalar_t>(),
                                          c_state.data_ptr<scalar_t>(),
                                          peephole.numel() ? peephole.data_ptr<scalar_t>() : nullptr,
                                          &ln,
                                          packed.data_ptr<scalar_t>(),
                                          lengths.numel() ? lengths.data_ptr<int64_t>() : nullptr,
                                          steps, batch, hidden, reverse, keep};
      dispatch_variant(peephole.numel() > 0, coupled, [&](auto peephole_flag, auto coupled_flag) {
        ln_forward_loop<scalar_t, decltype(peephole_flag)::value, decltype(coupled_flag)::value>(loop);
      });
      return;
    }
    ForwardLoop<scalar_t> loop{fuse_input ? nullptr : input_gates.data_ptr<scalar_t>(),
                               fuse_input ? x.data_ptr<scalar_t>() : nullptr,
                               fuse_input ? packed_in.data_ptr<scalar_t>() : nullptr,
                               bias.data_ptr<scalar_t>(),
                               fuse_input ? x.size(2) : 0,
                               gates.data_ptr<scalar_t>(),
                               cells.data_ptr<scalar_t>(),
                               hiddens.data_ptr<scalar_t>(),
                               gates.stride(1),
                               cells.stride(1),
                               hiddens.stride(1),
                               {h_state.data_ptr<scalar_t>(), h_other.data_ptr<scalar_t>()},
                               c_state.data_ptr<scalar_t>(),
                               peephole.numel() ? peephole.data_ptr<scalar_t>() : nullptr,
                               packed.data_ptr<scalar_t>(),
                               lengths.numel() ? lengths.data_ptr<int64_t>() : nullptr,
                               steps, batch, hidden, reverse, keep};
    dispatch_variant(peephole.numel() > 0, coupled, [&](auto peephole_flag, auto coupled_flag) {
      forward_loop<scalar_t, decltype(peephole_flag)::value, decltype(coupled_flag)::value>(loop);
    });
  });
  if (!ln.on() && steps % 2) h_state.copy_(h_other);  // the last step wrote the other buffer
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

// Backward on the packed loop: fills dz, dh_total and turns dh_next, dc_next (dL/dh_n,
// dL/dc_n) into dL/dh_0, dL/dc_0; with layer norm also d_rec and d_cell_ln.
// Absent trace gradients (empty tensors) count as zeros; c_{t-1} comes from cells and c0.
void backward_packed(const torch::Tensor& d_hiddens, const std::vector<torch::Tensor>& d_gates_in,
                     const torch::Tensor& d_cells_in, const torch::Tensor& gates, const torch::Tensor& cells,
                     const torch::Tensor& c0, const torch::Tensor& w_hh, const torch::Tensor& peephole,
                     const LayerNormWeights& ln, const LayerNormSaved& saved, const torch::Tensor& lengths,
                     torch::Tensor& dz, torch::Tensor& dh_total, torch::Tensor& dh_next, torch::Tensor& dc_next,
                     torch::Tensor& d_rec, torch::Tensor& d_cell_ln, bool reverse, bool coupled) {
  const int64_t steps = gates.size(0), batch = gates.size(1), hidden = cells.size(2);
  const bool has_d_cells = d_cells_in.numel() > 0;
  auto zeros = torch::zeros({batch, hidden}, gates.options());  // stands in for absent trace gradients
  const auto& d_cells_trace = has_d_cells ? d_cells_in : zeros;
  const int64_t d_cells_step = has_d_cells ? batch * hidden : 0;
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "backward_packed", [&] {
    const auto d_gates_trace = gate_grads<scalar_t>(d_gates_in, zeros);
    auto packed = pack_backward<scalar_t>(w_hh, backward_split<scalar_t>(batch, hidden).parts);
    if (ln.on()) {
      auto c_prev = torch::empty_like(c0);
      LayerNormBackwardLoop<scalar_t> loop{d_hiddens.data_ptr<scalar_t>(),
                                           d_gates_trace,
                                           d_cells_trace.data_ptr<scalar_t>(),
                                           d_cells_step,
                                           gates.data_ptr<scalar_t>(),
                                           cells.data_ptr<scalar_t>(),
                                           c0.data_ptr<scalar_t>(),
                                           c_prev.data_ptr<scalar_t>(),
                                           saved.r_hat.data_ptr<scalar_t>(),
                                           saved.rstd_r.data_ptr<scalar_t>(),
                                           saved.c_hat.data_ptr<scalar_t>(),
                                           saved.rstd_c.data_ptr<scalar_t>(),
                                           peephole.numel() ? peephole.data_ptr<scalar_t>() : nullptr,
                                           &ln,
                                           packed.data_ptr<scalar_t>(),
                                           lengths.numel() ? lengths.data_ptr<int64_t>() : nullptr,
                                           dz.data_ptr<scalar_t>(),
                                           d_rec.data_ptr<scalar_t>(),
                                           d_cell_ln.data_ptr<scalar_t>(),
                                           dh_total.data_ptr<scalar_t>(),
                                           dh_next.data_ptr<scalar_t>(),
                                           dc_next.data_ptr<scalar_t>(),
                                           steps, batch, hidden, reverse};
      dispatch_variant(peephole.numel() > 0, coupled, [&](auto peephole_flag, auto coupled_flag) {
        ln_backward_loop<scalar_t, decltype(peephole_flag)::value, decltype(coupled_flag)::value>(loop);
      });
      return;
    }
    BackwardLoop<scalar_t> loop{d_hiddens.data_ptr<scalar_t>(),
                                d_gates_trace,
                                d_cells_trace.data_ptr<scalar_t>(),
                                d_cells_step,
                                gates.data_ptr<scalar_t>(),
                                cells.data_ptr<scalar_t>(),
                                c0.data_ptr<scalar_t>(),
                                peephole.numel() ? peephole.data_ptr<scalar_t>() : nullptr,
                                packed.data_ptr<scalar_t>(),
                                lengths.numel() ? lengths.data_ptr<int64_t>() : nullptr,
                                dz.data_ptr<scalar_t>(),
                                dh_total.data_ptr<scalar_t>(),
                                dh_next.data_ptr<scalar_t>(),
                                dc_next.data_ptr<scalar_t>(),
                                steps, batch, hidden, reverse};
    dispatch_variant(peephole.numel() > 0, coupled, [&](auto peephole_flag, auto coupled_flag) {
      backward_loop<scalar_t, decltype(peephole_flag)::value, decltype(coupled_flag)::value>(loop);
    });
  });
}

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

}  // namespace

// Returns {gates (T,B,4H), C (T,B,H), M (T,B,H), H (T,B,P), h_n (B,P), c_n (B,H)}, then for
// layer norm {r_hat (T,B,4H), rstd_r (T,B), c_hat (T,B,H), rstd_c (T,B)} (empty otherwise), then
// with zoneout on c the cells' fresh values before zoneout (T,B,H) (empty otherwise).
// keep_c (T,B,H) / keep_h (T,B,P): zoneout's keep weights, or empty tensors.
// keep_trace false (no trace, no backward): gates, C and the LN tensors may hold only one
// step (T = 1 in their shapes); M, H, h_n and c_n are complete.
// input_gates (T,B,4H): the packed loops without layer norm overwrite it with the gates when
// they keep the trace (it is consumed: pass a buffer nothing else reads).
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
std::vector<torch::Tensor> fused_forward(torch::Tensor input_gates, torch::Tensor h0, torch::Tensor c0,
                                         torch::Tensor w_hh, torch::Tensor w_hr, torch::Tensor peephole,
                                         torch::Tensor ln_g_hh, torch::Tensor ln_g_c, torch::Tensor ln_b_c,
                                         torch::Tensor keep_c, torch::Tensor keep_h, torch::Tensor lengths,
                                         bool reverse, bool coupled, bool keep_trace, torch::Tensor x,
                                         torch::Tensor w_ih, torch::Tensor bias, torch::Tensor ln_g_ih,
                                         std::vector<torch::Tensor> out, std::vector<torch::Tensor> packed_weights) {
  const LayerNormWeights ln{ln_g_hh, ln_g_c, ln_b_c, ln_g_ih, bias};
  const auto& sized = input_gates.numel() ? input_gates : x;
  const int64_t steps = sized.size(0), batch = sized.size(1), hidden = c0.size(1);
  const bool project = w_hr.defined() && w_hr.numel() > 0;
  const bool zone_c = keep_c.numel() > 0, zone_h = keep_h.numel() > 0;
  const int64_t width = h0.size(1), wide = batch * 4 * hidden, narrow = batch * hidden;
  // Without trace and autograd the packed loops keep one step of gates, cells and LN
  // statistics (scratch): the full (T, B, 4H) would cost memory traffic and page faults.
  const bool packed = packed_loops(project, zone_c, zone_h), keep = keep_trace || !packed;
  const int64_t kept = keep ? steps : 1;
  // The packed loops without layer norm read each number of input_gates once, right before
  // writing that gate at the same place: keeping the trace, they write the gates over it
  // (input_gates is consumed), which saves a (T, B, 4H) buffer and a third of its traffic.
  TORCH_CHECK(out.empty() || (out.size() == 3 && packed && !ln.on()),
              "fused_forward: out is {gates, cells, hiddens}, for the packed loops without layer norm");
  if (out.empty()) out.resize(3);
  const bool gates_in_place = packed && !ln.on() && keep && input_gates.numel() > 0 && !out[0].numel();
  TORCH_CHECK(!gates_in_place || (input_gates.is_contiguous() && input_gates.size(2) == 4 * hidden),
              "fused_forward: input_gates must be a contiguous (T, B, 4H) tensor");
  auto gates = gates_in_place ? input_gates : output_buffer(out[0], {kept, batch, 4 * hidden}, c0.options());
  auto cells = output_buffer(out[1], {kept, batch, hidden}, c0.options());
  auto hidden_pre = output_buffer(out[2], {steps, batch, hidden}, c0.options());
  auto hiddens = (project || zone_h) ? pooled_empty({steps, batch, width}, h0.options()) : hidden_pre;
  // With zoneout the carried c_t differs from the cell's fresh value, which o, tanh and LN see.
  auto cells_fresh = zone_c ? pooled_empty_like(cells) : torch::Tensor();
  auto c_before = zone_c ? torch::empty_like(c0) : torch::Tensor();
  auto h_state = h0.clone();
  auto c_state = c0.clone();
  const int64_t* len_ptr = lengths.numel() ? lengths.data_ptr<int64_t>() : nullptr;
  LayerNormSaved saved;
  if (ln.on()) {
    saved = {pooled_empty_like(gates), torch::empty({kept, batch}, c0.options()),
             pooled_empty({kept, batch, hidden}, c0.options()), torch::empty({kept, batch}, c0.options())};
  }
  if (packed) {
    forward_packed(input_gates, x, w_ih, bias, w_hh, peephole, ln, lengths, gates, cells, hidden_pre, h_state, c_state,
                   saved, reverse, coupled, keep, packed_weights);
    return {gates, cells, hidden_pre, hiddens, h_state, c_state, saved.r_hat, saved.rstd_r, saved.c_hat,
            saved.rstd_c, cells_fresh};
  }
  TORCH_CHECK(input_gates.numel() > 0 && bias.numel() == (ln.on() ? w_hh.size(0) : 0),
              "fused_forward: projection and zoneout take input_gates with the bias in them (layer norm: u_hat "
              "and the bias apart)");
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
      if (zone_c) std::copy(p.c_state, p.c_state + narrow, c_before.data_ptr<scalar_t>());
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
      if (zone_c) {  // c_t = keep * c_{t-1} + (1 - keep) * fresh, carried and traced
        zoneout_rows(p.cell, c_before.data_ptr<scalar_t>(), keep_c.data_ptr<scalar_t>() + t * narrow,
                     cells_fresh.data_ptr<scalar_t>() + t * narrow, batch, hidden, len_ptr, t);
        update_hidden<scalar_t>(p.c_state, p.cell, batch, hidden, len_ptr, t);
      }
      scalar_t* h_step = hiddens.data_ptr<scalar_t>() + t * batch * width;
      if (project) {  // (B, P); padded rows of M are 0, so are theirs
        gemm_bt(h_step, p.hidden_pre, w_hr.data_ptr<scalar_t>(), batch, width, hidden, false, options);
      } else if (zone_h) {
        std::copy(p.hidden_pre, p.hidden_pre + narrow, h_step);
      }
      if (zone_h) {
        zoneout_rows(h_step, h_run, keep_h.data_ptr<scalar_t>() + t * batch * width, static_cast<scalar_t*>(nullptr),
                     batch, width, len_ptr, t);
      }
      update_hidden<scalar_t>(h_run, h_step, batch, width, len_ptr, t);
    }
  });
  return {gates, cells, hidden_pre, hiddens, h_state, c_state, saved.r_hat, saved.rstd_r, saved.c_hat, saved.rstd_c,
          cells_fresh};
}

// Returns {dZ (T,B,4H) = d input_gates, dh0 (B,P), dc0 (B,H), dH_total (T,B,P)}, where dH_total
// is dL/dh_t including the recurrent part (for dW_hr = dH_total^T M); then, for layer norm,
// {dR (T,B,4H) = d(W_hh h_{t-1}), dC_ln (T,B,H) = d(LN(c) g_c + b_c)} (empty otherwise).
// c_prev (T,B,H): c_{t-1} of each step, needed only with projection or zoneout (the packed
// loops derive it from cells and c0; pass an empty tensor there). d_gates_trace: the
// trace's gradients of i, f, g, o, each (T,B,H) or empty; d_cells_trace (T,B,H) or empty
// (empty: no gradient through the trace there).
std::vector<torch::Tensor> fused_backward(torch::Tensor d_hiddens, std::vector<torch::Tensor> d_gates_trace,
                                          torch::Tensor d_cells_trace, torch::Tensor dh_n, torch::Tensor dc_n,
                                          torch::Tensor gates, torch::Tensor cells, torch::Tensor c_prev,
                                          torch::Tensor c0, torch::Tensor w_hh, torch::Tensor w_hr, torch::Tensor peephole,
                                          torch::Tensor ln_g_hh, torch::Tensor ln_g_c, torch::Tensor ln_b_c,
                                          torch::Tensor r_hat, torch::Tensor rstd_r, torch::Tensor c_hat,
                                          torch::Tensor rstd_c, torch::Tensor keep_c, torch::Tensor keep_h,
                                          torch::Tensor cells_fresh, torch::Tensor lengths, bool reverse,
                                          bool coupled) {
  const bool zone_c = keep_c.numel() > 0, zone_h = keep_h.numel() > 0;
  const LayerNormWeights ln{ln_g_hh, ln_g_c, ln_b_c};
  const LayerNormSaved saved{r_hat, rstd_r, c_hat, rstd_c};
  auto d_rec = ln.on() ? pooled_empty_like(gates) : torch::Tensor();
  auto d_cell_ln = ln.on() ? pooled_empty_like(cells) : torch::Tensor();
  const int64_t steps = gates.size(0), batch = gates.size(1), hidden = cells.size(2);
  const bool project = w_hr.defined() && w_hr.numel() > 0;
  const int64_t width = dh_n.size(1);
  auto dz = pooled_empty_like(gates);
  auto dh_total = pooled_empty({steps, batch, width}, dh_n.options());
  auto dh_next = dh_n.clone();
  auto dc_next = dc_n.clone();
  auto dh_recurrent = torch::empty_like(dh_n);
  auto d_hidden_pre = project ? torch::empty({batch, hidden}, dc_n.options()) : torch::Tensor();
  const int64_t* len_ptr = lengths.numel() ? lengths.data_ptr<int64_t>() : nullptr;
  const auto options = dc_n.options();
  const int64_t wide = batch * 4 * hidden, narrow = batch * hidden, outer = batch * width;
  // Zoneout: the share of a state's gradient that skips the cell and goes straight to the
  // previous state; with zoneout on c, the trace's c gradient enters through that split.
  auto carry_h = zone_h ? torch::zeros_like(dh_n) : torch::Tensor();
  auto carry_c = zone_c ? torch::zeros_like(dc_n) : torch::Tensor();
  auto dc_total = zone_c ? torch::empty_like(dc_n) : torch::Tensor();
  auto no_trace_grad = zone_c ? torch::zeros_like(dc_n) : torch::Tensor();
  if (packed_loops(project, zone_c, zone_h)) {
    backward_packed(d_hiddens, d_gates_trace, d_cells_trace, gates, cells, c0, w_hh, peephole, ln, saved, lengths,
                    dz, dh_total, dh_next, dc_next, d_rec, d_cell_ln, reverse, coupled);
    return {dz, dh_next, dc_next, dh_total, d_rec, d_cell_ln};
  }
  auto zeros = torch::zeros({batch, hidden}, options);  // stands in for absent trace gradients
  const int64_t dct_step = d_cells_trace.numel() ? narrow : 0;
  if (!dct_step) d_cells_trace = zeros;
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "fused_backward", [&] {
    const auto dgt = gate_grads<scalar_t>(d_gates_trace, zeros);
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
      if (zone_h) {  // dh becomes the fresh value's gradient; keep * dh skips to h_{t-1}
        zoneout_backward_rows(dh, keep_h.data_ptr<scalar_t>() + t * outer, dh, carry_h.data_ptr<scalar_t>(), batch,
                              width, len_ptr, t);
      }
      const scalar_t* dm_ptr = dh;
      if (project) {
        gemm_b(d_hidden_pre.data_ptr<scalar_t>(), dh, w_hr.data_ptr<scalar_t>(), batch, width, hidden, options);
        dm_ptr = d_hidden_pre.data_ptr<scalar_t>();
      }
      const scalar_t* dct = d_cells_trace.data_ptr<scalar_t>() + t * dct_step;
      const scalar_t* g_ptr = gates.data_ptr<scalar_t>() + t * wide;
      const scalar_t* c_ptr = (zone_c ? cells_fresh : cells).data_ptr<scalar_t>() + t * narrow;
      if (zone_c) {  // dL/dc_t (later steps + trace) splits into the fresh value's share and the carry
        scalar_t* total = dc_total.data_ptr<scalar_t>();
        for (int64_t j = 0; j < narrow; ++j) total[j] = dc_ptr[j] + dct[j];
        zoneout_backward_rows(total, keep_c.data_ptr<scalar_t>() + t * narrow, dc_ptr, carry_c.data_ptr<scalar_t>(),
                              batch, hidden, len_ptr, t);
        dct = no_trace_grad.data_ptr<scalar_t>();  // already counted in the split
      }
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
        if (!is_valid(len_ptr, b, t)) {
          std::fill(dh + b * width, dh + (b + 1) * width, scalar_t(0));  // no weight gradient from padding
          continue;
        }
        std::copy(dh_rec + b * width, dh_rec + (b + 1) * width, row);
        if (zone_h)
          for (int64_t j = b * width; j < (b + 1) * width; ++j) dh_run[j] += carry_h.data_ptr<scalar_t>()[j];
        if (zone_c)
          for (int64_t j = b * hidden; j < (b + 1) * hidden; ++j) dc_ptr[j] += carry_c.data_ptr<scalar_t>()[j];
      }
    }
  });
  return {dz, dh_next, dc_next, dh_total, d_rec, d_cell_ln};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &fused_forward, "fused LSTM layer-direction forward");
  m.def("backward", &fused_backward, "fused LSTM layer-direction backward");
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
