// Streaming inference: one time step of a unidirectional stack, all layers in C++.
//
// `PackedStack` packs the stack's weights once (fused_gemv.h's panels) and runs a step with
// no allocation: per layer one small-batch product z = b + [x | h_{t-1}] . [W_ih | W_hh]^T
// (two products for the layer-norm cell, which normalises each share on its own), one
// pass of gate math, and the projection h = m . W_hr^T when the layer has one.
// `StepWeights` (Python: the weights of `LSTM.step`) watches the module's parameters and
// re-packs them when any changed; `StreamState` (Python: the core of `lstmlab.Stream`)
// adds the state (h, c) so that a step is one call with one tensor argument.
#pragma once

#include <torch/extension.h>

#include <memory>
#include <vector>

#include "fused_gemv.h"
#include "fused_kernels.h"
#include "fused_layer_norm.h"
#include "fused_math.h"

namespace lstmlab_fused {

// One batch row of the plain / peephole / coupled cell: gates from z (4H, pre-activation),
// c_run (H) updated in place, m = o * tanh(c) written to m_out (H). The streaming step
// keeps no trace, so unlike the sequence loop's row kernel it does not store the gates.
template <typename scalar_t, bool Peephole, bool Coupled>
void stream_activate_row(const scalar_t* __restrict z, scalar_t* __restrict c_run, scalar_t* __restrict m_out,
                         const scalar_t* __restrict peephole, int64_t hidden) {
#pragma omp simd  // as in activate_units
  for (int64_t j = 0; j < hidden; ++j) {
    const auto u = cell_unit<scalar_t, Peephole, Coupled>(z[j], z[hidden + j], z[2 * hidden + j], z[3 * hidden + j],
                                                          c_run[j], peephole, j, hidden);
    c_run[j] = u.c;
    m_out[j] = u.m;
  }
}

// One layer's weights, packed. Optional tensors are empty.
struct StreamLayer {
  int64_t in_size = 0, hidden = 0, width = 0;  // I of this layer, H, P
  PackedMatrix gates;       // [W_ih | W_hh] (K = I + P); W_ih alone for the layer-norm cell
  PackedMatrix recurrent;   // W_hh, layer-norm cell only
  PackedMatrix projection;  // W_hr (K = H, N = P), when proj_size > 0
  torch::Tensor bias;       // b_ih + b_hh, padded to padded(4H) (plain cell; empty: no bias)
  torch::Tensor ln_bias, peephole, ln_ih, ln_hh, ln_c_weight, ln_c_bias;
  bool layer_norm() const { return ln_ih.numel() > 0; }
};

// A unidirectional stack's weights packed for one-step products, and the step itself.
class PackedStack {
 public:
  // flat: per layer w_ih, w_hh, b_ih + b_hh, w_hr, peephole, ln_ih, ln_hh, ln_c_weight,
  // ln_c_bias (engines/fused_stream.py's step_weights; empty tensors where the cell has none).
  PackedStack(const std::vector<torch::Tensor>& flat, bool coupled) : coupled_(coupled) {
    TORCH_CHECK(!flat.empty() && flat.size() % 9 == 0, "PackedStack: expected 9 tensors per layer, got ", flat.size());
    dtype_ = flat[0].scalar_type();
    for (size_t l = 0; l < flat.size(); l += 9) {
      StreamLayer layer;
      const auto &w_ih = flat[l], &w_hh = flat[l + 1], &bias = flat[l + 2], &w_hr = flat[l + 3];
      layer.in_size = w_ih.size(1);
      layer.hidden = w_ih.size(0) / 4;
      layer.width = w_hh.size(1);
      layer.peephole = flat[l + 4].contiguous();
      layer.ln_ih = flat[l + 5].contiguous();
      layer.ln_hh = flat[l + 6].contiguous();
      layer.ln_c_weight = flat[l + 7].contiguous();
      layer.ln_c_bias = flat[l + 8].contiguous();
      if (layer.layer_norm()) {
        layer.gates = PackedMatrix({w_ih});
        layer.recurrent = PackedMatrix({w_hh});
        // zeros without bias: the row kernel adds u_hat * g_ih + b itself
        layer.ln_bias = bias.numel() ? bias.contiguous() : torch::zeros({4 * layer.hidden}, w_ih.options());
      } else {
        layer.gates = PackedMatrix({w_ih, w_hh});
        if (bias.numel()) {
          layer.bias = torch::zeros({padded(4 * layer.hidden)}, bias.options());
          layer.bias.narrow(0, 0, 4 * layer.hidden).copy_(bias);
        }
      }
      if (w_hr.numel()) layer.projection = PackedMatrix({w_hr});
      layers_.push_back(std::move(layer));
    }
  }

  at::ScalarType dtype() const { return dtype_; }
  int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }
  const StreamLayer& layer(int64_t l) const { return layers_[l]; }

  // x (B, I) (or (I,) when B = 1); h (L, B, P) and c (L, B, H) updated in place; y (B, P)
  // gets the top layer's h. All contiguous, of this stack's dtype and shapes (callers check).
  void run(const torch::Tensor& x, torch::Tensor& h, torch::Tensor& c, torch::Tensor& y) const {
    AT_DISPATCH_FLOATING_TYPES(dtype_, "stream_step", [&] {
      dispatch_variant(layers_[0].peephole.numel() > 0, coupled_, [&](auto peephole_flag, auto coupled_flag) {
        constexpr bool P = decltype(peephole_flag)::value, C = decltype(coupled_flag)::value;
        run_typed<scalar_t, P, C>(x, h, c, y);
      });
    });
  }

 private:
  template <typename scalar_t>
  static scalar_t* workspace(int64_t count) {  // per thread, grows once, never shrinks
    thread_local std::vector<scalar_t> buffer;
    if (static_cast<int64_t>(buffer.size()) < count) buffer.resize(count);
    return buffer.data();
  }

  template <typename scalar_t, bool Peephole, bool Coupled>
  void run_typed(const torch::Tensor& x, torch::Tensor& h, torch::Tensor& c, torch::Tensor& y) const {
    const int64_t batch = h.size(1);  // x is (B, I), or (I,) for one unbatched row
    int64_t most = 0;  // the widest row among 4H, H and P (padded), over the layers
    for (const auto& layer : layers_) most = std::max({most, padded(4 * layer.hidden), padded(layer.width)});
    // z, r (B, most) each; then per row: gates after LN (most), c_out, c_hat (most each); m (B, most)
    scalar_t* z = workspace<scalar_t>((5 * batch + 3) * most);
    scalar_t* r = z + batch * most;
    scalar_t* m = r + batch * most;
    scalar_t* proj = m + batch * most;
    scalar_t* z_ln = proj + batch * most;
    scalar_t* c_out = z_ln + most;
    scalar_t* c_hat = c_out + most;
    const scalar_t* input = x.data_ptr<scalar_t>();
    int64_t in_stride = layers_[0].in_size;
    for (int64_t l = 0; l < num_layers(); ++l) {
      const StreamLayer& w = layers_[l];
      const int64_t hidden = w.hidden, width = w.width;
      scalar_t* h_l = h.data_ptr<scalar_t>() + l * batch * width;
      scalar_t* c_l = c.data_ptr<scalar_t>() + l * batch * hidden;
      const scalar_t* peep = Peephole ? w.peephole.data_ptr<scalar_t>() : nullptr;
      const bool project = w.projection.cols > 0;
      scalar_t* m_rows = project ? m : h_l;  // without a projection h_t = m_t, written in place
      const int64_t m_stride = project ? most : width;
      if (!w.layer_norm()) {
        const scalar_t* bias = w.bias.numel() ? w.bias.data_ptr<scalar_t>() : nullptr;
        gemv_packed<scalar_t>(z, most, bias, {input, in_stride, w.in_size, h_l, width}, w.gates, batch);
        for (int64_t b = 0; b < batch; ++b)  // the product read all of h_{t-1}: now h_l may change
          stream_activate_row<scalar_t, Peephole, Coupled>(z + b * most, c_l + b * hidden, m_rows + b * m_stride,
                                                           peep, hidden);
      } else {
        gemv_packed<scalar_t>(z, most, nullptr, {input, in_stride, w.in_size, input, in_stride}, w.gates, batch);
        gemv_packed<scalar_t>(r, most, nullptr, {h_l, width, width, h_l, width}, w.recurrent, batch);
        for (int64_t b = 0; b < batch; ++b)
          layer_norm_row<scalar_t, Peephole, Coupled>(w, z + b * most, r + b * most, z_ln, c_out, c_hat,
                                                      c_l + b * hidden, m_rows + b * m_stride);
      }
      if (project) {
        gemv_packed<scalar_t>(proj, most, nullptr, {m, most, hidden, m, most}, w.projection, batch);
        for (int64_t b = 0; b < batch; ++b) std::copy(proj + b * most, proj + b * most + width, h_l + b * width);
      }
      input = h_l;
      in_stride = width;
    }
    std::copy(input, input + batch * in_stride, y.data_ptr<scalar_t>());
  }

  // The layer-norm cell for one row: z = W_ih x normalised in place to LN(W_ih x), then the
  // shared row kernel (which adds its gain g_ih and the bias) with r = W_hh h_{t-1}.
  template <typename scalar_t, bool Peephole, bool Coupled>
  void layer_norm_row(const StreamLayer& w, scalar_t* z, scalar_t* r, scalar_t* z_out, scalar_t* c_out,
                      scalar_t* c_hat, scalar_t* c_run, scalar_t* m_out) const {
    const int64_t hidden = w.hidden;
    normalize_recurrent<scalar_t, Coupled>(z, hidden);
    scalar_t rstd_r, rstd_c;
    activate_row_ln<scalar_t, Peephole, Coupled>(z, w.ln_ih.data_ptr<scalar_t>(), w.ln_bias.data_ptr<scalar_t>(),
                                                 r, z_out, c_out, c_hat, m_out, c_run, &rstd_r, &rstd_c,
                                                 Peephole ? w.peephole.data_ptr<scalar_t>() : nullptr,
                                                 w.ln_hh.data_ptr<scalar_t>(), w.ln_c_weight.data_ptr<scalar_t>(),
                                                 w.ln_c_bias.data_ptr<scalar_t>(), hidden);
  }

  std::vector<StreamLayer> layers_;
  at::ScalarType dtype_;
  bool coupled_;
};

// A module's parameters packed for the step, re-packed when any of them changed: a
// parameter replaced (another object in the module's `_parameters`), changed in place
// (its version counter moved: optimiser steps, load_state_dict, `with torch.no_grad():
// w.mul_(...)`) or given other storage (`p.data = ...`, `module.double()`). The check
// reads a few integers per parameter, well under a microsecond.
class StepWeights {
 public:
  // params: the module's `_parameters` dict; pack: a callable returning the flat list
  // of PackedStack (called now and after every change).
  StepWeights(py::dict params, py::function pack, bool coupled)
      : params_(std::move(params)), pack_(std::move(pack)), coupled_(coupled) {
    repack();
  }

  // The packed weights, re-packed first if a parameter changed.
  const PackedStack& current() {
    if (changed()) repack();
    return *stack_;
  }

  // LSTM.step without autograd: x (B, I); h (L, B, P), c (L, B, H) contiguous, updated in
  // place. Returns the top layer's new h (B, P), a new tensor.
  torch::Tensor step(const torch::Tensor& x, torch::Tensor h, torch::Tensor c) {
    const PackedStack& stack = current();
    check_state(stack, h, c, x.size(0));
    TORCH_CHECK(x.dim() == 2 && x.size(1) == stack.layer(0).in_size && x.scalar_type() == stack.dtype(),
                "step: x of shape (B, I) and the weights' dtype expected");
    auto y = torch::empty({h.size(1), h.size(2)}, h.options());
    stack.run(x.contiguous(), h, c, y);
    return y;
  }

  static void check_state(const PackedStack& stack, const torch::Tensor& h, const torch::Tensor& c, int64_t batch) {
    const auto& top = stack.layer(stack.num_layers() - 1);
    if (h.scalar_type() != stack.dtype() || c.scalar_type() != stack.dtype())
      throw py::type_error("the LSTM's weights are " + std::string(c10::toString(stack.dtype())) +
                           " but the state is " + c10::toString(h.scalar_type()) +
                           " (the weights changed dtype: start a new Stream, or pass a state of the new dtype)");
    TORCH_CHECK(h.is_contiguous() && c.is_contiguous() && h.device().is_cpu() && c.device().is_cpu() &&
                    h.dim() == 3 && c.dim() == 3 && h.size(0) == stack.num_layers() && h.size(1) == batch &&
                    h.size(2) == top.width && c.size(0) == stack.num_layers() && c.size(1) == batch &&
                    c.size(2) == top.hidden,
                "step: state (h, c) of shapes (L, B, P), (L, B, H), contiguous CPU tensors expected");
  }

 private:
  struct Watched {
    py::object object;  // held, so that its address cannot be reused by a replacement
    int64_t version;
    const void* data;
  };

  bool changed() const {
    PyObject* dict = params_.ptr();
    if (PyDict_Size(dict) != static_cast<Py_ssize_t>(watched_.size())) return true;
    Py_ssize_t position = 0;
    PyObject *key, *value;
    size_t index = 0;
    while (PyDict_Next(dict, &position, &key, &value)) {
      const Watched& seen = watched_[index++];
      if (value != seen.object.ptr()) return true;
      if (THPVariable_Check(value)) {
        const at::Tensor& tensor = THPVariable_Unpack(value);
        if (tensor._version() != seen.version || tensor.data_ptr() != seen.data) return true;
      }
    }
    return false;
  }

  void repack() {
    auto flat = pack_().cast<std::vector<torch::Tensor>>();
    stack_ = std::make_unique<PackedStack>(flat, coupled_);
    watched_.clear();
    Py_ssize_t position = 0;
    PyObject *key, *value;
    while (PyDict_Next(params_.ptr(), &position, &key, &value)) {
      Watched seen{py::reinterpret_borrow<py::object>(value), 0, nullptr};
      if (THPVariable_Check(value)) {
        const at::Tensor& tensor = THPVariable_Unpack(value);
        seen.version = tensor._version();
        seen.data = tensor.data_ptr();
      }
      watched_.push_back(std::move(seen));
    }
  }

  py::dict params_;
  py::function pack_;
  bool coupled_;
  std::unique_ptr<PackedStack> stack_;
  std::vector<Watched> watched_;
};

// The core of lstmlab.Stream: the watched weights and the state, one tensor per call.
class StreamState {
 public:
  // h (L, B, P), c (L, B, H): owned by the stream (the Python side copies into them on reset).
  StreamState(std::shared_ptr<StepWeights> weights, torch::Tensor h, torch::Tensor c, bool unbatched)
      : weights_(std::move(weights)), h(std::move(h)), c(std::move(c)), unbatched_(unbatched) {}

  // x (B, I), or (I,) unbatched -> the top layer's new h (B, P) or (P,), a new tensor.
  // Raises ValueError("Stream input") for a tensor of another shape, dtype or device (the
  // Python side then says what was expected).
  torch::Tensor step(const torch::Tensor& x) {
    const PackedStack& stack = weights_->current();
    const int64_t batch = h.size(1), features = stack.layer(0).in_size;
    const bool shape_ok = unbatched_ ? (x.dim() == 1 && x.size(0) == features)
                                     : (x.dim() == 2 && x.size(0) == batch && x.size(1) == features);
    if (!shape_ok || x.scalar_type() != h.scalar_type() || !x.device().is_cpu()) throw py::value_error("Stream input");
    StepWeights::check_state(stack, h, c, batch);
    auto y = unbatched_ ? torch::empty({h.size(2)}, h.options()) : torch::empty({batch, h.size(2)}, h.options());
    stack.run(x.is_contiguous() ? x : x.contiguous(), h, c, y);
    return y;
  }

  std::shared_ptr<StepWeights> weights_;
  torch::Tensor h, c;

 private:
  bool unbatched_;
};

inline void bind_stream(py::module& m) {
  py::class_<StepWeights, std::shared_ptr<StepWeights>>(m, "StepWeights",
                                                        "A module's weights packed for the streaming step")
      .def(py::init<py::dict, py::function, bool>(), py::arg("params"), py::arg("pack"), py::arg("coupled"))
      .def("step", &StepWeights::step, "x (B, I), h (L, B, P), c (L, B, H) updated in place -> y (B, P)");
  py::class_<StreamState>(m, "StreamState", "The core of lstmlab.Stream: packed weights and the state")
      .def(py::init<std::shared_ptr<StepWeights>, torch::Tensor, torch::Tensor, bool>(), py::arg("weights"),
           py::arg("h"), py::arg("c"), py::arg("unbatched"))
      .def("step", &StreamState::step, "x (B, I) or (I,) -> the top layer's new h (B, P) or (P,)")
      .def_readonly("h", &StreamState::h)
      .def_readonly("c", &StreamState::c);
}

}  // namespace lstmlab_fused
