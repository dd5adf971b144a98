// The time loops of the layer-normalised cell (with or without peephole / coupled; no
// projection, no zoneout) on packed W_hh and one thread team (see fused_recurrent.h).
//
// Layer norm needs whole rows (the moments of W_hh h over all 4H gates, of c over all H
// units), so each step has two rounds: the recurrent product split by hidden units
// (tile_forward, raw into r_hat), then the normalisation and gate math split by batch
// rows (layer_norm_rows). The backward likewise: dh_rec = dR_{t+1} W_hh by units
// (tile_backward), then the LN backward by rows.
// A single running h suffices: rounds that read h (products) and rounds that write it
// (row math) never overlap.
#pragma once

#include <torch/extension.h>

#include <algorithm>

#include "fused_layer_norm.h"
#include "fused_recurrent.h"

namespace lstmlab_fused {

// Tensors of one layer-norm forward call (all contiguous, P = H).
template <typename scalar_t>
struct LayerNormForwardLoop {
  const scalar_t* u_hat;    // (T, B, 4H): LN(x W_ih^T), before the gain and bias (in weights)
  scalar_t* hiddens;        // (T, B, H) out: h_t (0 on padded steps)
  // Unless keep, the following hold one step (T = 1 in their shapes): scratch.
  scalar_t* gates;          // (T, B, 4H) out: activated gates
  scalar_t* cells;          // (T, B, H) out: c_t
  scalar_t* r_hat;          // (T, B, 4H) out: W_hh h_{t-1}, normalised in place
  scalar_t* rstd_r;         // (T, B) out
  scalar_t* c_hat;          // (T, B, H) out
  scalar_t* rstd_c;         // (T, B) out
  scalar_t* h_run;          // (B, H) running h, in/out
  scalar_t* c_run;          // (B, H) running c, in/out
  const scalar_t* peephole;  // (3H) or nullptr
  const LayerNormWeights* weights;
  const scalar_t* packed;   // pack_forward(W_hh)
  const int64_t* lengths;   // (B) or nullptr
  int64_t steps, batch, hidden;
  bool reverse;
  bool keep;                // keep every step's gates, cells and LN statistics, or only the last
};

// Round 2s: W_hh h_{t-1} for the unit blocks [first, last) of rows [row_begin, row_end), into r_hat[t].
template <typename scalar_t>
void ln_forward_product(const LayerNormForwardLoop<scalar_t>& f, int64_t t, int64_t first, int64_t last,
                        int64_t row_begin, int64_t row_end) {
  constexpr int L = kLanes<scalar_t>;
  const int64_t H = f.hidden, B = f.batch;
  const bool ahead = fetch_panels_ahead<scalar_t>(H);
  const int64_t tiles = row_blocks(row_begin, row_end);
  alignas(64) scalar_t tile[kRowBlock * 4 * L];
  const PanelOrder order = panel_order(first, last, 1, t);
  for (int64_t k = 0; k < order.count; ++k) {
    const int64_t u = order.at(k), u0 = u * L, n = std::min<int64_t>(L, H - u0);
    const scalar_t* next = next_unit_panel(f.packed, order, k, H, ahead);
    for (int64_t r0 = row_begin; r0 < row_end; r0 += kRowBlock) {
      const int rows = static_cast<int>(std::min<int64_t>(kRowBlock, row_end - r0));
      tile_forward_rows(rows, tile, f.h_run + r0 * H, H, f.packed + u * H * 4 * L, H, false,
                        panel_ahead(next, H * 4 * L, tiles, (r0 - row_begin) / kRowBlock, H));
      for (int r = 0; r < rows; ++r) {
        scalar_t* row = f.r_hat + ((f.keep ? t : 0) * B + r0 + r) * 4 * H + u0;
        for (int64_t k = 0; k < 4; ++k) std::copy(tile + (r * 4 + k) * L, tile + (r * 4 + k) * L + n, row + k * H);
      }
    }
  }
}

// Round 2s+1: layer norm, gate math and the new h for batch rows [first, last).
template <typename scalar_t, bool Peephole, bool Coupled>
void ln_forward_rows(const LayerNormForwardLoop<scalar_t>& f, int64_t t, int64_t first, int64_t last) {
  const int64_t H = f.hidden, B = f.batch, slot = f.keep ? t : 0;
  StepPointers<scalar_t> p{f.gates + slot * B * 4 * H, f.cells + slot * B * H, f.hiddens + t * B * H, f.c_run,
                           f.peephole};
  layer_norm_rows<scalar_t, Peephole, Coupled>(f.u_hat + t * B * 4 * H, p, f.r_hat + slot * B * 4 * H,
                                               f.c_hat + slot * B * H, f.rstd_r + slot * B, f.rstd_c + slot * B,
                                               *f.weights, H, f.lengths, t, first, last);
  for (int64_t b = first; b < last; ++b)
    if (is_valid(f.lengths, b, t)) std::copy(p.hidden_pre + b * H, p.hidden_pre + (b + 1) * H, f.h_run + b * H);
}

template <typename scalar_t, bool Peephole, bool Coupled>
void ln_forward_loop(const LayerNormForwardLoop<scalar_t>& f) {
  const int64_t blocks = blocks_of<scalar_t>(f.hidden);
  const auto split = loop_split<scalar_t>(f.batch, f.hidden, 4 * f.hidden * f.hidden);
  if (split.rows) {  // both halves of a step for the thread's own rows
    run_rows(f.steps, f.batch, split.threads, [&](int64_t round, int64_t row_begin, int64_t row_end) {
      const int64_t t = time_index(round, f.steps, f.reverse);
      ln_forward_product(f, t, 0, blocks, row_begin, row_end);
      ln_forward_rows<scalar_t, Peephole, Coupled>(f, t, row_begin, row_end);
    });
    return;
  }
  run_rounds(2 * f.steps, split.parts, split.threads, [&](int64_t part, int64_t round) {
    const int64_t t = time_index(round / 2, f.steps, f.reverse);
    int64_t first, last;
    if (round % 2 == 0) {
      share(blocks, split.parts, part, first, last);
      ln_forward_product(f, t, first, last, 0, f.batch);
    } else {
      share(f.batch, split.parts, part, first, last);
      ln_forward_rows<scalar_t, Peephole, Coupled>(f, t, first, last);
    }
  });
}

// Tensors of one layer-norm backward call (all contiguous, P = H).
template <typename scalar_t>
struct LayerNormBackwardLoop {
  const scalar_t* d_hiddens;  // (T, B, H)
  GateGrads<scalar_t> d_gates;  // dL/d gates via the trace
  const scalar_t* d_cells;    // (T, B, H) via the trace, or (1, B, H) zeros
  int64_t d_cells_step;       // its stride in t (0 for the zeros)
  const scalar_t* gates;      // (T, B, 4H)
  const scalar_t* cells;      // (T, B, H)
  const scalar_t* c0;         // (B, H)
  scalar_t* c_prev;           // (B, H) scratch: this step's c_{t-1}, row by row
  const scalar_t* r_hat;      // (T, B, 4H)
  const scalar_t* rstd_r;     // (T, B)
  const scalar_t* c_hat;      // (T, B, H)
  const scalar_t* rstd_c;     // (T, B)
  const scalar_t* peephole;   // (3H) or nullptr
  const LayerNormWeights* weights;
  const scalar_t* packed;     // pack_backward(W_hh, backward_split(...).parts)
  const int64_t* lengths;     // (B) or nullptr
  scalar_t* dz;               // (T, B, 4H) out
  scalar_t* d_rec;            // (T, B, 4H) out: dL/d(W_hh h_{t-1})
  scalar_t* d_cell_ln;        // (T, B, H) out
  scalar_t* dh_total;         // (T, B, H) out
  scalar_t* dh_run;           // (B, H) in: dL/dh_n, out: dL/dh_0
  scalar_t* dc_run;           // (B, H) in: dL/dc_n, out: dL/dc_0
  int64_t steps, batch, hidden;
  bool reverse;
};

// Round 2s, unit blocks [first, last) of rows [row_begin, row_end): dh from the step of
// the previous round (dR W_hh), then this step's total dL/dh_t (0 on padded rows).
template <typename scalar_t>
void ln_backward_product(const LayerNormBackwardLoop<scalar_t>& d, int64_t round, int64_t first, int64_t last,
                         int64_t row_begin, int64_t row_end) {
  constexpr int L = kLanes<scalar_t>;
  const int64_t H = d.hidden, B = d.batch, T = d.steps, s = round / 2;
  const int64_t t_later = s > 0 ? time_index(T - s, T, d.reverse) : 0;
  const int64_t t = s < T ? time_index(T - 1 - s, T, d.reverse) : 0;
  const bool ahead = fetch_panels_ahead<scalar_t>(H);
  const int64_t tiles = row_blocks(row_begin, row_end);
  const PanelOrder order = panel_order(first, last, kColumnGroup, s);
  for (int64_t k = 0; k < order.count; ++k) {  // one group of columns (see pack_backward)
    const int64_t u = order.at(k);
    const int columns = static_cast<int>(std::min<int64_t>(kColumnGroup, last - u));
    const int64_t u0 = u * L, n = std::min<int64_t>(columns * L, H - u0);
    const auto [next, next_numel] = next_column_group(d.packed, order, k, last, H);
    for (int64_t r0 = row_begin; r0 < row_end; r0 += kRowBlock) {
      const int rows = static_cast<int>(std::min<int64_t>(kRowBlock, row_end - r0));
      if (s > 0)  // dh_t = dR_{t+1} W_hh
        recurrent_gradient(d.d_rec + t_later * B * 4 * H, d.packed, d.lengths, t_later, r0, rows, u, columns, H,
                           d.dh_run,
                           panel_ahead(ahead ? next : nullptr, next_numel, tiles, (r0 - row_begin) / kRowBlock, 4 * H));
      if (s == T) continue;
      for (int r = 0; r < rows; ++r) {
        const int64_t b = r0 + r, narrow = (t * B + b) * H + u0;
        const bool valid = is_valid(d.lengths, b, t);
        for (int64_t j = 0; j < n; ++j)
          d.dh_total[narrow + j] = valid ? d.d_hiddens[narrow + j] + d.dh_run[b * H + u0 + j] : scalar_t(0);
      }
    }
  }
}

// Round 2s+1, batch rows [first, last): the layer-norm cell's backward for step t.
template <typename scalar_t, bool Peephole, bool Coupled>
void ln_backward_rows(const LayerNormBackwardLoop<scalar_t>& d, int64_t t, int64_t first, int64_t last) {
  const int64_t H = d.hidden, B = d.batch, wide = t * B * 4 * H, narrow = t * B * H;
  LayerNormStep<scalar_t> step{d.r_hat + wide, d.c_hat + narrow, d.rstd_r + t * B, d.rstd_c + t * B};
  for (int64_t b = first; b < last; ++b) {
    const scalar_t* row = previous_cell(d.cells, d.c0, d.lengths, b, t, d.steps, B, H, d.reverse);
    std::copy(row, row + H, d.c_prev + b * H);
  }
  layer_norm_backward_rows<scalar_t, Peephole, Coupled>(
      d.gates + wide, d.c_prev, step, *d.weights, d.dh_total + narrow, d.d_gates,
      d.d_cells + t * d.d_cells_step,
      d.peephole, d.dz + wide, d.dc_run, d.d_cell_ln + narrow, d.d_rec + wide, H, d.lengths, t, first, last);
}

template <typename scalar_t, bool Peephole, bool Coupled>
void ln_backward_loop(const LayerNormBackwardLoop<scalar_t>& d) {
  const int64_t blocks = blocks_of<scalar_t>(d.hidden);
  const auto split = backward_split<scalar_t>(d.batch, d.hidden);  // as packed
  if (split.rows) {  // both halves of a round pair for the thread's own rows
    run_rows(d.steps + 1, d.batch, split.threads, [&](int64_t s, int64_t row_begin, int64_t row_end) {
      ln_backward_product(d, 2 * s, 0, blocks, row_begin, row_end);
      if (s < d.steps)
        ln_backward_rows<scalar_t, Peephole, Coupled>(d, time_index(d.steps - 1 - s, d.steps, d.reverse), row_begin,
                                                      row_end);
    });
    return;
  }
  run_rounds(2 * d.steps + 1, split.parts, split.threads, [&](int64_t part, int64_t round) {
    int64_t first, last;
    if (round % 2 == 0) {
      share(blocks, split.parts, part, first, last);
      ln_backward_product(d, round, first, last, 0, d.batch);
    } else {
      share(d.batch, split.parts, part, first, last);
      ln_backward_rows<scalar_t, Peephole, Coupled>(d, time_index(d.steps - 1 - round / 2, d.steps, d.reverse),
                                                    first, last);
    }
  });
}

}  // namespace lstmlab_fused
