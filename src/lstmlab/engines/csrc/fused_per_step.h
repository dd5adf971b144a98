// The per-step loops: the cells with projection or zoneout (with or without layer norm,
// peephole, coupled). Each step is one GEMM (gemm_bt into the step's gate block; with
// projection a second one for h = W_hr m) plus a pass of row kernels split by batch rows.
// The packed loops (fused_packed_calls.h) run the other cells.
#pragma once

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>

#include "fused_arguments.h"
#include "fused_kernels.h"
#include "fused_layer_norm.h"
#include "fused_math.h"
#include "fused_packed_calls.h"

namespace lstmlab_fused {

// Forward: fills out's gates, cells, hidden_pre (M), hiddens (H), h_n and c_n (in: h0,
// c0), with layer norm out.saved, with zoneout on c out.cells_fresh (every step kept).
template <typename scalar_t>
class PerStepForward {
 public:
  PerStepForward(const ForwardInputs& in, const LayerNormWeights& ln, ForwardOutputs& out)
      : in_(in), ln_(ln), out_(out), batch_(out.cells.size(1)), hidden_(out.cells.size(2)),
        width_(out.h_n.size(1)), wide_(batch_ * 4 * hidden_), narrow_(batch_ * hidden_),
        lengths_(lengths_or_null(in.lengths)), peephole_(data_or_null<scalar_t>(in.peephole)),
        c_before_(in.keep_c.numel() ? torch::empty_like(in.c0) : torch::Tensor()) {}

  void run() {
    const int64_t steps = out_.hiddens.size(0);
    for (int64_t k = 0; k < steps; ++k) {
      const int64_t t = time_index(k, steps, in_.reverse);
      StepPointers<scalar_t> p{out_.gates.data_ptr<scalar_t>() + t * wide_,
                               out_.cells.data_ptr<scalar_t>() + t * narrow_,
                               out_.hidden_pre.data_ptr<scalar_t>() + t * narrow_, out_.c_n.data_ptr<scalar_t>(),
                               peephole_};
      if (zone_c()) std::copy(p.c_state, p.c_state + narrow_, c_before_.data_ptr<scalar_t>());
      if (ln_.on()) layer_norm_gates(t, p);
      else gates(t, p);
      outputs(t, p);
    }
  }

 private:
  bool zone_c() const { return in_.keep_c.numel() > 0; }
  bool zone_h() const { return in_.keep_h.numel() > 0; }
  scalar_t* h_run() const { return out_.h_n.data_ptr<scalar_t>(); }

  // z = x_gates[t] + W_hh h_{t-1}, then the gate math row by row.
  void gates(int64_t t, StepPointers<scalar_t> p) const {
    const scalar_t* x_gates = in_.input_gates.data_ptr<scalar_t>() + t * wide_;
    std::copy(x_gates, x_gates + wide_, p.gates);
    gemm_bt(p.gates, h_run(), in_.w_hh.data_ptr<scalar_t>(), batch_, 4 * hidden_, width_, true, in_.c0.options());
    dispatch_cell(peephole_ != nullptr, in_.cell, [&](auto peephole_flag, auto cell_bits) {
      at::parallel_for(0, batch_, grain(hidden_), [&](int64_t begin, int64_t end) {
        activate_rows<scalar_t, decltype(peephole_flag)::value, decltype(cell_bits)::value>(p, hidden_, lengths_, t,
                                                                                                begin, end);
      });
    });
  }

  // r = W_hh h_{t-1} into r_hat[t] (normalised in place by the row kernel), then the gates.
  void layer_norm_gates(int64_t t, StepPointers<scalar_t> p) const {
    const LayerNormSaved& saved = out_.saved;
    scalar_t* r = saved.r_hat.data_ptr<scalar_t>() + t * wide_;
    gemm_bt(r, h_run(), in_.w_hh.data_ptr<scalar_t>(), batch_, 4 * hidden_, width_, false, in_.c0.options());
    const scalar_t* u_hat = in_.input_gates.data_ptr<scalar_t>() + t * wide_;
    dispatch_variant(peephole_ != nullptr, (in_.cell & kCoupled) != 0, [&](auto peephole_flag, auto coupled_flag) {
      at::parallel_for(0, batch_, grain(hidden_), [&](int64_t begin, int64_t end) {
        layer_norm_rows<scalar_t, decltype(peephole_flag)::value, decltype(coupled_flag)::value>(
            u_hat, p, r, saved.c_hat.data_ptr<scalar_t>() + t * narrow_, saved.rstd_r.data_ptr<scalar_t>() + t * batch_,
            saved.rstd_c.data_ptr<scalar_t>() + t * batch_, ln_, hidden_, lengths_, t, begin, end);
      });
    });
  }

  // Zoneout on c, then h_t (projected and/or zoned out) and the running h.
  void outputs(int64_t t, StepPointers<scalar_t> p) const {
    if (zone_c()) {  // c_t = keep * c_{t-1} + (1 - keep) * fresh, carried and traced
      zoneout_rows(p.cell, c_before_.data_ptr<scalar_t>(), in_.keep_c.data_ptr<scalar_t>() + t * narrow_,
                   out_.cells_fresh.data_ptr<scalar_t>() + t * narrow_, batch_, hidden_, lengths_, t);
      update_hidden<scalar_t>(p.c_state, p.cell, batch_, hidden_, lengths_, t);
    }
    scalar_t* h_step = out_.hiddens.data_ptr<scalar_t>() + t * batch_ * width_;
    if (in_.w_hr.numel()) {  // (B, P); padded rows of M are 0, so are theirs
      gemm_bt(h_step, p.hidden_pre, in_.w_hr.data_ptr<scalar_t>(), batch_, width_, hidden_, false, in_.c0.options());
    } else if (zone_h()) {
      std::copy(p.hidden_pre, p.hidden_pre + narrow_, h_step);
    }
    if (zone_h()) {
      zoneout_rows(h_step, h_run(), in_.keep_h.data_ptr<scalar_t>() + t * batch_ * width_,
                   static_cast<scalar_t*>(nullptr), batch_, width_, lengths_, t);
    }
    update_hidden<scalar_t>(h_run(), h_step, batch_, width_, lengths_, t);
  }

  const ForwardInputs& in_;
  const LayerNormWeights& ln_;
  ForwardOutputs& out_;
  const int64_t batch_, hidden_, width_, wide_, narrow_;
  const int64_t* lengths_;
  const scalar_t* peephole_;
  torch::Tensor c_before_;  // (B, H) c_{t-1}, kept for zoneout on c
};

inline void forward_per_step(const ForwardInputs& in, const LayerNormWeights& ln, ForwardOutputs& out) {
  TORCH_CHECK(in.input_gates.numel() > 0 && in.bias.numel() == (ln.on() ? in.w_hh.size(0) : 0),
              "fused_forward: projection and zoneout take input_gates with the bias in them (layer norm: u_hat "
              "and the bias apart)");
  AT_DISPATCH_FLOATING_TYPES(in.input_gates.scalar_type(), "forward_per_step",
                             [&] { PerStepForward<scalar_t>(in, ln, out).run(); });
}

// Backward: fills out's dz, dh_total (and with layer norm d_rec, d_cell_ln) and turns dh0,
// dc0 (in: dL/dh_n, dL/dc_n) into dL/dh_0, dL/dc_0. Reads in.c_prev (T,B,H).
template <typename scalar_t>
class PerStepBackward {
 public:
  PerStepBackward(const BackwardInputs& in, const LayerNormWeights& ln, BackwardOutputs& out)
      : in_(in), ln_(ln), out_(out), batch_(in.gates.size(1)), hidden_(in.cells.size(2)), width_(in.dh_n.size(1)),
        wide_(batch_ * 4 * hidden_), narrow_(batch_ * hidden_), outer_(batch_ * width_),
        lengths_(lengths_or_null(in.lengths)), peephole_(data_or_null<scalar_t>(in.peephole)),
        trace_(in, batch_, hidden_), dh_recurrent_(torch::empty_like(in.dh_n)),
        d_hidden_pre_(in.w_hr.numel() ? torch::empty({batch_, hidden_}, in.dc_n.options()) : torch::Tensor()),
        // Zoneout: the share of a state's gradient that skips the cell and goes straight
        // to the previous state; with zoneout on c, the trace's c gradient enters there.
        carry_h_(zone_h() ? torch::zeros_like(in.dh_n) : torch::Tensor()),
        carry_c_(zone_c() ? torch::zeros_like(in.dc_n) : torch::Tensor()),
        dc_total_(zone_c() ? torch::empty_like(in.dc_n) : torch::Tensor()),
        dh_run_(out.dh0.data_ptr<scalar_t>()), dc_run_(out.dc0.data_ptr<scalar_t>()) {}

  void run() {
    const int64_t steps = in_.gates.size(0);
    for (int64_t k = steps - 1; k >= 0; --k) {
      const int64_t t = time_index(k, steps, in_.reverse);
      const scalar_t* dm = hidden_gradient(t);
      const scalar_t* d_pre = cell_gradient(t, dm);
      to_previous_step(t, d_pre);
    }
  }

 private:
  bool zone_c() const { return in_.keep_c.numel() > 0; }
  bool zone_h() const { return in_.keep_h.numel() > 0; }
  scalar_t* dh_total(int64_t t) const { return out_.dh_total.data_ptr<scalar_t>() + t * outer_; }

  // dL/dh_t (the output's and the later steps'), zoneout's split of it; returns dL/dm (B, H).
  const scalar_t* hidden_gradient(int64_t t) const {
    scalar_t* dh = dh_total(t);
    const scalar_t* d_out = in_.d_hiddens.data_ptr<scalar_t>() + t * outer_;
    for (int64_t b = 0; b < batch_; ++b) {
      // Padded rows: the output there is a constant 0, only the state passes through.
      const bool valid = is_valid(lengths_, b, t);
      for (int64_t j = b * width_; j < (b + 1) * width_; ++j) dh[j] = (valid ? d_out[j] : scalar_t(0)) + dh_run_[j];
    }
    if (zone_h()) {  // dh becomes the fresh value's gradient; keep * dh skips to h_{t-1}
      zoneout_backward_rows(dh, in_.keep_h.data_ptr<scalar_t>() + t * outer_, dh, carry_h_.data_ptr<scalar_t>(),
                            batch_, width_, lengths_, t);
    }
    if (!in_.w_hr.numel()) return dh;
    gemm_b(d_hidden_pre_.data_ptr<scalar_t>(), dh, in_.w_hr.data_ptr<scalar_t>(), batch_, width_, hidden_,
           in_.dc_n.options());
    return d_hidden_pre_.data_ptr<scalar_t>();
  }

  // The cell's backward for step t (dz, dc_run to dL/dc_{t-1}); returns the gradient of
  // W_hh h_{t-1} (B, 4H): dz, or with layer norm d_rec.
  const scalar_t* cell_gradient(int64_t t, const scalar_t* dm) const {
    const scalar_t* dct = trace_.cells + t * trace_.cells_step;
    if (zone_c()) {  // dL/dc_t (later steps + trace) splits into the fresh value's share and the carry
      scalar_t* total = dc_total_.data_ptr<scalar_t>();
      for (int64_t j = 0; j < narrow_; ++j) total[j] = dc_run_[j] + dct[j];
      zoneout_backward_rows(total, in_.keep_c.data_ptr<scalar_t>() + t * narrow_, dc_run_,
                            carry_c_.data_ptr<scalar_t>(), batch_, hidden_, lengths_, t);
      dct = trace_.zero_rows;  // already counted in the split
    }
    const scalar_t* gates = in_.gates.data_ptr<scalar_t>() + t * wide_;
    const scalar_t* c_prev = in_.c_prev.data_ptr<scalar_t>() + t * narrow_;
    scalar_t* dz = out_.dz.data_ptr<scalar_t>() + t * wide_;
    if (!ln_.on()) {
      const torch::Tensor& cells_seen = zone_c() ? in_.cells_fresh : in_.cells;  // fresh: before zoneout
      const scalar_t* cells = cells_seen.data_ptr<scalar_t>() + t * narrow_;
      dispatch_cell(peephole_ != nullptr, in_.cell, [&](auto peephole_flag, auto cell_bits) {
        at::parallel_for(0, batch_, grain(hidden_), [&](int64_t begin, int64_t end) {
          backward_rows<scalar_t, decltype(peephole_flag)::value, decltype(cell_bits)::value>(
              gates, cells, c_prev, dm, trace_.gates, dct, peephole_, dz, dc_run_, hidden_, lengths_, t, begin, end);
        });
      });
      return dz;
    }
    const LayerNormSaved& saved = in_.saved;
    LayerNormStep<scalar_t> step{saved.r_hat.data_ptr<scalar_t>() + t * wide_,
                                 saved.c_hat.data_ptr<scalar_t>() + t * narrow_,
                                 saved.rstd_r.data_ptr<scalar_t>() + t * batch_,
                                 saved.rstd_c.data_ptr<scalar_t>() + t * batch_};
    scalar_t* d_rec = out_.d_rec.data_ptr<scalar_t>() + t * wide_;
    scalar_t* d_cell_ln = out_.d_cell_ln.data_ptr<scalar_t>() + t * narrow_;
    dispatch_variant(peephole_ != nullptr, (in_.cell & kCoupled) != 0, [&](auto peephole_flag, auto coupled_flag) {
      at::parallel_for(0, batch_, grain(hidden_), [&](int64_t begin, int64_t end) {
        layer_norm_backward_rows<scalar_t, decltype(peephole_flag)::value, decltype(coupled_flag)::value>(
            gates, c_prev, step, ln_, dm, trace_.gates, dct, peephole_, dz, dc_run_, d_cell_ln, d_rec, hidden_,
            lengths_, t, begin, end);
      });
    });
    return d_rec;
  }

  // dL/dh_{t-1} = d_pre W_hh (plus zoneout's carries) for valid rows; padded rows keep
  // the state's gradient and get no weight gradient (dh_total 0 there).
  void to_previous_step(int64_t t, const scalar_t* d_pre) const {
    scalar_t* dh_rec = dh_recurrent_.data_ptr<scalar_t>();
    gemm_b(dh_rec, d_pre, in_.w_hh.data_ptr<scalar_t>(), batch_, 4 * hidden_, width_, in_.dc_n.options());  // (B, P)
    scalar_t* dh = dh_total(t);
    for (int64_t b = 0; b < batch_; ++b) {
      if (!is_valid(lengths_, b, t)) {
        std::fill(dh + b * width_, dh + (b + 1) * width_, scalar_t(0));
        continue;
      }
      std::copy(dh_rec + b * width_, dh_rec + (b + 1) * width_, dh_run_ + b * width_);
      if (zone_h()) {
        const scalar_t* carry = carry_h_.data_ptr<scalar_t>();
        for (int64_t j = b * width_; j < (b + 1) * width_; ++j) dh_run_[j] += carry[j];
      }
      if (zone_c()) {
        const scalar_t* carry = carry_c_.data_ptr<scalar_t>();
        for (int64_t j = b * hidden_; j < (b + 1) * hidden_; ++j) dc_run_[j] += carry[j];
      }
    }
  }

  const BackwardInputs& in_;
  const LayerNormWeights& ln_;
  BackwardOutputs& out_;
  const int64_t batch_, hidden_, width_, wide_, narrow_, outer_;
  const int64_t* lengths_;
  const scalar_t* peephole_;
  const TraceGrads<scalar_t> trace_;
  torch::Tensor dh_recurrent_, d_hidden_pre_, carry_h_, carry_c_, dc_total_;
  scalar_t* const dh_run_;  // (B, P): dL/dh_t of the step being processed, in out.dh0
  scalar_t* const dc_run_;  // (B, H): dL/dc_t likewise, in out.dc0
};

inline void backward_per_step(const BackwardInputs& in, const LayerNormWeights& ln, BackwardOutputs& out) {
  AT_DISPATCH_FLOATING_TYPES(in.gates.scalar_type(), "backward_per_step",
                             [&] { PerStepBackward<scalar_t>(in, ln, out).run(); });
}

}  // namespace lstmlab_fused
