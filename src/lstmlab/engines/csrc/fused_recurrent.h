// The time loops of the plain, peephole and coupled cells (no projection, no zoneout) on
// packed W_hh and one thread team for the whole sequence (fused_packed.h, fused_team.h).
//
// Forward, each step: the hidden units are split between the team's parts; a part
// computes, per block of L units and R batch rows, the recurrent product for all four
// gates of those units (tile_forward), adds the input gates and runs the gate math while
// the tile is in L1. h_t must be complete before step t+1 reads it: one round per step.
// h lives in two running buffers (read h_{t-1} from one, write h_t to the other), since a
// part writes its units of h_t while the others still read all of h_{t-1}.
// Backward, each step: a part computes its columns of dh_rec = dZ_{t+1} W_hh (tile_backward),
// then the gate backward of the same units, writing their dZ_t. One round per step, plus
// one at the end for dh_0.
// Where the weights fit in a core's L2 and the batch has rows enough, the threads split
// the batch rows instead (loop_split, run_rows): each runs every step for its own rows,
// all unit blocks, and no thread ever waits for another.
#pragma once

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <type_traits>
#include <utility>

#include "fused_kernels.h"
#include "fused_math.h"
#include "fused_packed.h"
#include "fused_team.h"

namespace lstmlab_fused {

// Below this many multiply-adds per step, a second thread costs more (one wait per step
// on a shared machine) than it saves: run the loop on the calling thread.
constexpr int64_t kTeamMinWork = 1 << 16;

inline int64_t team_threads(int64_t macs_per_step) {
  return macs_per_step >= kTeamMinWork ? at::get_num_threads() : 1;
}

// Batch rows are independent in both loops, so the threads can also split the rows: each
// runs the whole sequence for its rows and never waits for another (run_rows). That saves
// the team's wait per step and the exchange of h (dZ in the backward) between the cores,
// ~10-20 us per step here. But each thread then reads all of the step's weights instead
// of its share, every step: rows are split only while they fit well in a core's L2 (2 MiB
// here), and each thread keeps at least kRowSplitMinRows rows for its tiles.
constexpr int64_t kRowSplitMaxBytes = 3 << 19;  // 1.5 MiB
constexpr int64_t kRowSplitMinRows = 4;

// How a packed loop shares its rounds between threads.
struct LoopSplit {
  int64_t threads;  // 1: the calling thread alone
  int64_t parts;    // the team's parts of hidden-unit blocks per round (1 when rows split)
  bool rows;        // rows split (run_rows) instead of a team over unit blocks (run_rounds)
};

// The split for a loop over `batch` rows and `hidden` units whose tiles read
// `weight_numel` weights per step (W_hh, plus W_ih when the tile computes the input share).
template <typename scalar_t>
inline LoopSplit loop_split(int64_t batch, int64_t hidden, int64_t weight_numel) {
  const int64_t threads = team_threads(batch * 4 * hidden * hidden);
  const bool fits = weight_numel * static_cast<int64_t>(sizeof(scalar_t)) <= kRowSplitMaxBytes;
  if (threads > 1 && fits && batch >= 2 * kRowSplitMinRows)
    return {std::min(threads, batch / kRowSplitMinRows), 1, true};
  return {threads, std::min({blocks_of<scalar_t>(hidden), threads, kMaxParts}), false};
}

// Whether the loops ask for each next panel ahead (PanelAhead): where W_hh does not fit in
// a core's L2 it streams from L3 every step. Where it fits, asking costs ~3%.
template <typename scalar_t>
inline bool fetch_panels_ahead(int64_t hidden) {
  return 4 * hidden * hidden * static_cast<int64_t>(sizeof(scalar_t)) > kRowSplitMaxBytes;
}

// Row blocks (tiles) of rows [row_begin, row_end).
inline int64_t row_blocks(int64_t row_begin, int64_t row_end) {
  return (row_end - row_begin + kRowBlock - 1) / kRowBlock;
}

// The backward loops' split; their W_hh panels are packed for its parts (pack_backward).
template <typename scalar_t>
inline LoopSplit backward_split(int64_t batch, int64_t hidden) {
  return loop_split<scalar_t>(batch, hidden, 4 * hidden * hidden);
}

// The order in which a part visits its panels in one round: unit blocks [first, last)
// (forward), or the column groups that start at first, first + kColumnGroup, ...
// (backward); ascending in even rounds, descending in odd ones. Where W_hh does not fit in
// a core's L2, a round then starts with the panels the previous one ended with, still in
// L2, and only the others come from L3 (in ascending order every round, the oldest line
// goes first and each panel is gone again when it is next needed).
struct PanelOrder {
  int64_t first, count, stride;
  bool descending;
  // The first unit block of the k-th panel visited.
  int64_t at(int64_t k) const { return first + (descending ? count - 1 - k : k) * stride; }
};

inline PanelOrder panel_order(int64_t first, int64_t last, int64_t stride, int64_t round) {
  return {first, (last - first + stride - 1) / stride, stride, round % 2 == 1};
}

// The forward panel (pack_forward) visited after the k-th, or null: after the last (the
// next round starts with the same one, still cached) or unless `ahead`.
template <typename scalar_t>
inline const scalar_t* next_unit_panel(const scalar_t* packed, const PanelOrder& order, int64_t k, int64_t hidden,
                                       bool ahead) {
  return ahead && k + 1 < order.count ? packed + order.at(k + 1) * hidden * 4 * kLanes<scalar_t> : nullptr;
}

// The panel of pack_backward's column group visited after the k-th (of a part's blocks
// [first, last)) and its numbers; null after the last, as in next_unit_panel.
template <typename scalar_t>
inline std::pair<const scalar_t*, int64_t> next_column_group(const scalar_t* packed, const PanelOrder& order,
                                                              int64_t k, int64_t last, int64_t hidden) {
  if (k + 1 >= order.count) return {nullptr, 0};
  const int64_t v = order.at(k + 1), columns = std::min<int64_t>(kColumnGroup, last - v);
  return {packed + v * 4 * hidden * kLanes<scalar_t>, 4 * hidden * columns * kLanes<scalar_t>};
}

// The backward's recurrent product for one tile: dh_run's units [u0, u0 + n) (column group
// u of `columns` blocks, see pack_backward) of batch rows [r0, r0 + rows) = d_later W_hh,
// d_later (B, 4H) being the gradient of the step done in the previous round (at t_later).
// Rows that did not run at t_later keep their dh: their state passed through.
template <typename scalar_t>
inline void recurrent_gradient(const scalar_t* d_later, const scalar_t* packed, const int64_t* lengths,
                               int64_t t_later, int64_t r0, int rows, int64_t u, int columns, int64_t hidden,
                               scalar_t* dh_run, PanelAhead ahead) {
  constexpr int L = kLanes<scalar_t>;
  const int64_t u0 = u * L, n = std::min<int64_t>(columns * L, hidden - u0);
  alignas(64) scalar_t tile[kRowBlock * kColumnGroup * L];
  tile_backward_rows(rows, columns, tile, d_later + r0 * 4 * hidden, 4 * hidden, packed + u * 4 * hidden * L,
                     4 * hidden, ahead);
  for (int r = 0; r < rows; ++r)
    if (is_valid(lengths, r0 + r, t_later))
      std::copy(tile + r * columns * L, tile + r * columns * L + n, dh_run + (r0 + r) * hidden + u0);
}

// Asks for the cache lines of p[0, n) ahead of use (write = 1 for lines about to be
// written). The per-step slices of the big (T, B, ...) buffers come from memory; the
// tile's arithmetic hides the latency if the request goes out before it.
template <int Write, typename scalar_t>
inline void prefetch(const scalar_t* p, int64_t n) {
  const char* first = reinterpret_cast<const char*>(p);
  const char* last = reinterpret_cast<const char*>(p + n);
  for (const char* line = first; line < last; line += 64) __builtin_prefetch(line, Write, 3);
  __builtin_prefetch(last - 1, Write, 3);
}

// The four gate slices [u0, u0 + n) of a (4H) row.
template <int Write, typename scalar_t>
inline void prefetch_gates(const scalar_t* row, int64_t hidden, int64_t n) {
  for (int64_t k = 0; k < 4; ++k) prefetch<Write>(row + k * hidden, n);
}

// c_{t-1} (H) of batch row b at step t: c_0 at the row's first step (t = 0, or its last
// valid t when reversed), else the cell state of the step before. Saves materialising
// a (T, B, H) copy of the cells shifted by one step.
template <typename scalar_t>
inline const scalar_t* previous_cell(const scalar_t* cells, const scalar_t* c0, const int64_t* lengths, int64_t b,
                                     int64_t t, int64_t steps, int64_t batch, int64_t hidden, bool reverse) {
  const bool first = reverse ? t == (lengths ? lengths[b] - 1 : steps - 1) : t == 0;
  return first ? c0 + b * hidden : cells + ((reverse ? t + 1 : t - 1) * batch + b) * hidden;
}

// One batch row of a forward tile, `count` units (Count, when not 0, is count as a
// compile-time constant: a full block of L units, one vector per gate with no remainder
// code): z = tile + bias (input + tile + bias with Input) for the four gates, then
// cell_unit; writes the gates (z, gate k at k * H), the cell state (cell and c_run) and
// h (h and h_next, the running copy the next step reads).
template <typename scalar_t, bool Peephole, int Cell, bool Input, int Count>
inline void activate_tile_row(const scalar_t* __restrict row_tile, const scalar_t* __restrict input,
                              const scalar_t* __restrict bias, const scalar_t* __restrict peephole,
                              scalar_t* __restrict z, scalar_t* __restrict cell, scalar_t* __restrict h,
                              scalar_t* __restrict h_next, scalar_t* __restrict c_run, int64_t count, int64_t H) {
  constexpr int L = kLanes<scalar_t>;
  if constexpr (Count != 0) count = Count;
  // omp simd: with a constant count, GCC otherwise unrolls the loop completely first and
  // then fails to vectorise the peephole cell's straight-line code (3x slower).
#pragma omp simd
  for (int64_t j = 0; j < count; ++j) {
    scalar_t pre[4];
    for (int k = 0; k < 4; ++k)
      pre[k] = (Input ? input[k * H + j] + row_tile[k * L + j] : row_tile[k * L + j]) + bias[k * H + j];
    const auto u = cell_unit<scalar_t, Peephole, Cell>(pre[0], pre[1], pre[2], pre[3], c_run[j], peephole, j, H);
    z[j] = u.i;
    z[H + j] = u.f;
    z[2 * H + j] = u.g;
    z[3 * H + j] = u.o;
    cell[j] = c_run[j] = u.c;
    h[j] = h_next[j] = u.m;
  }
}

// Tensors of one forward call (T = steps, P = H here). All contiguous, except that the
// rows of gates, cells and hiddens may lie further apart (their *_row strides): one
// direction of a (T, B, D, ·) buffer that both directions of a layer write into.
template <typename scalar_t>
struct ForwardLoop {
  // The input share of the pre-activations: x_gates, or (x_gates null) computed per
  // step from x, W_ih and bias inside the tile, saving the (T, B, 4H) buffer's traffic.
  const scalar_t* x_gates;  // (T, B, 4H) or nullptr
  const scalar_t* x;        // (T, B, I) when x_gates is null
  const scalar_t* packed_in;  // pack_forward(W_ih) when x_gates is null
  const scalar_t* bias;     // (4H) b_ih + b_hh (zeros for a cell without bias)
  int64_t input_size;       // I
  scalar_t* gates;          // (T, B, 4H) out: activated gates; (1, B, 4H) scratch unless keep
  scalar_t* cells;          // (T, B, H) out: c_t; (1, B, H) scratch unless keep
  scalar_t* hiddens;        // (T, B, H) out: h_t (0 on padded steps)
  int64_t gates_row, cells_row, hiddens_row;  // their row strides (4H, H, H when contiguous)
  scalar_t* h_run[2];       // (B, H) x 2: running h, alternately read and written; [0] holds h_0
  scalar_t* c_run;          // (B, H) running c, in/out
  const scalar_t* peephole;  // (3H) or nullptr
  const scalar_t* packed;   // pack_forward(W_hh)
  const int64_t* lengths;   // (B) or nullptr
  int64_t steps, batch, hidden;
  bool reverse;
  bool keep;                // keep every step's gates and cells (trace, backward), or only the last
};

// Step `round` of the forward for the unit blocks [first, last) of batch rows [row_begin, row_end).
template <typename scalar_t, bool Peephole, int Cell>
void forward_part(const ForwardLoop<scalar_t>& f, int64_t round, int64_t first, int64_t last, int64_t row_begin,
                  int64_t row_end) {
  constexpr int L = kLanes<scalar_t>;
  const int64_t H = f.hidden, B = f.batch, t = time_index(round, f.steps, f.reverse);
  const int64_t slot = f.keep ? t : 0;  // where this step's gates and cells go
  const scalar_t* h_prev = f.h_run[round % 2];
  scalar_t* h_next = f.h_run[(round + 1) % 2];
  const bool ahead = fetch_panels_ahead<scalar_t>(H);
  const int64_t tiles = row_blocks(row_begin, row_end);
  alignas(64) scalar_t tile[kRowBlock * 4 * L];
  const PanelOrder order = panel_order(first, last, 1, round);
  for (int64_t k = 0; k < order.count; ++k) {
    const int64_t u = order.at(k), u0 = u * L, n = std::min<int64_t>(L, H - u0);
    const scalar_t* panel = f.packed + u * H * 4 * L;
    const scalar_t* next = next_unit_panel(f.packed, order, k, H, ahead);
    for (int64_t r0 = row_begin; r0 < row_end; r0 += kRowBlock) {
      const int rows = static_cast<int>(std::min<int64_t>(kRowBlock, row_end - r0));
      if (f.x_gates) {
        for (int r = 0; r < rows; ++r) prefetch_gates<0>(f.x_gates + (t * B + r0 + r) * 4 * H + u0, H, n);
      } else {
        const int64_t I = f.input_size;
        tile_forward_rows(rows, tile, f.x + (t * B + r0) * I, I, f.packed_in + u * I * 4 * L, I);
      }
      tile_forward_rows(rows, tile, h_prev + r0 * H, H, panel, H, f.x_gates == nullptr,
                        panel_ahead(next, H * 4 * L, tiles, (r0 - row_begin) / kRowBlock, H));
      for (int r = 0; r < rows; ++r) {
        const int64_t b = r0 + r, wide = (t * B + b) * 4 * H + u0;
        scalar_t* z = f.gates + (slot * B + b) * f.gates_row + u0;
        scalar_t* cell = f.cells + (slot * B + b) * f.cells_row + u0;
        scalar_t* h = f.hiddens + (t * B + b) * f.hiddens_row + u0;
        if (!is_valid(f.lengths, b, t)) {  // padded: outputs 0, state kept
          for (int64_t k = 0; k < 4; ++k) std::fill(z + k * H, z + k * H + n, scalar_t(0));
          std::fill(cell, cell + n, scalar_t(0));
          std::fill(h, h + n, scalar_t(0));
          std::copy(h_prev + b * H + u0, h_prev + b * H + u0 + n, h_next + b * H + u0);
          continue;
        }
        // The bias is added here, not in the (T, B, 4H) GEMM: that would cost a pass over x_gates.
        const scalar_t* input = f.x_gates ? f.x_gates + wide : nullptr;
        const scalar_t* peephole = Peephole ? f.peephole + u0 : nullptr;
        scalar_t* c_run = f.c_run + b * H + u0;
        auto row = [&](auto input_flag, auto count_constant) {
          activate_tile_row<scalar_t, Peephole, Cell, decltype(input_flag)::value, decltype(count_constant)::value>(
              tile + r * 4 * L, input, f.bias + u0, peephole, z, cell, h, h_next + b * H + u0, c_run, n, H);
        };
        using Full = std::integral_constant<int, L>;
        using Any = std::integral_constant<int, 0>;
        if (input) {
          if (n == L) row(std::true_type{}, Full{});
          else row(std::true_type{}, Any{});
        } else {
          if (n == L) row(std::false_type{}, Full{});
          else row(std::false_type{}, Any{});
        }
      }
    }
  }
}

// The whole forward loop; the final h is left in f.h_run[steps % 2].
template <typename scalar_t, bool Peephole, int Cell>
void forward_loop(const ForwardLoop<scalar_t>& f) {
  const int64_t blocks = blocks_of<scalar_t>(f.hidden);
  const int64_t depth = f.hidden + (f.x_gates ? 0 : f.input_size);  // W_hh's, and W_ih's when in the tile
  const auto split = loop_split<scalar_t>(f.batch, f.hidden, 4 * f.hidden * depth);
  if (split.rows) {
    run_rows(f.steps, f.batch, split.threads, [&](int64_t round, int64_t row_begin, int64_t row_end) {
      forward_part<scalar_t, Peephole, Cell>(f, round, 0, blocks, row_begin, row_end);
    });
    return;
  }
  run_rounds(f.steps, split.parts, split.threads, [&](int64_t part, int64_t round) {
    int64_t first, last;
    share(blocks, split.parts, part, first, last);
    forward_part<scalar_t, Peephole, Cell>(f, round, first, last, 0, f.batch);
  });
}

// Tensors of one backward call (all contiguous, P = H).
template <typename scalar_t>
struct BackwardLoop {
  const scalar_t* d_hiddens;  // (T, B, H) dL/dh_t from outside (output, trace)
  GateGrads<scalar_t> d_gates;  // dL/d gates via the trace
  const scalar_t* d_cells;    // (T, B, H) dL/dc_t via the trace, or (1, B, H) zeros
  int64_t d_cells_step;       // its stride in t: B*H, or 0 for the zeros
  const scalar_t* gates;      // (T, B, 4H) forward's activated gates
  const scalar_t* cells;      // (T, B, H)
  const scalar_t* c0;         // (B, H): c_{t-1} of each row's first step
  const scalar_t* peephole;   // (3H) or nullptr
  const scalar_t* packed;     // pack_backward(W_hh, backward_split(...).parts)
  const int64_t* lengths;     // (B) or nullptr
  scalar_t* dz;               // (T, B, 4H) out
  scalar_t* dh_total;         // (T, B, H) out: dL/dh_t in total (0 on padded steps)
  scalar_t* dh_run;           // (B, H) in: dL/dh_n, out: dL/dh_0
  scalar_t* dc_run;           // (B, H) in: dL/dc_n, out: dL/dc_0
  int64_t steps, batch, hidden;
  bool reverse;
};

// Round `round` of the backward for the unit blocks [first, last) of batch rows
// [row_begin, row_end): first the recurrent gradient from the step done in the previous
// round, then this round's step (if any).
template <typename scalar_t, bool Peephole, int Cell>
void backward_part(const BackwardLoop<scalar_t>& d, int64_t round, int64_t first, int64_t last, int64_t row_begin,
                   int64_t row_end) {
  constexpr int L = kLanes<scalar_t>;
  const int64_t H = d.hidden, B = d.batch, T = d.steps;
  const bool has_later = round > 0, has_step = round < T;
  const int64_t t_later = has_later ? time_index(T - round, T, d.reverse) : 0;
  const int64_t t = has_step ? time_index(T - 1 - round, T, d.reverse) : 0;
  const bool ahead = fetch_panels_ahead<scalar_t>(H);
  const int64_t tiles = row_blocks(row_begin, row_end);
  const PanelOrder order = panel_order(first, last, kColumnGroup, round);
  for (int64_t k = 0; k < order.count; ++k) {  // one group of columns (see pack_backward)
    const int64_t u = order.at(k);
    const int columns = static_cast<int>(std::min<int64_t>(kColumnGroup, last - u));
    const int64_t u0 = u * L, n = std::min<int64_t>(columns * L, H - u0);
    const auto [next, next_numel] = next_column_group(d.packed, order, k, last, H);
    for (int64_t r0 = row_begin; r0 < row_end; r0 += kRowBlock) {
      const int rows = static_cast<int>(std::min<int64_t>(kRowBlock, row_end - r0));
      for (int r = 0; has_step && r < rows; ++r) {
        const int64_t wide = (t * B + r0 + r) * 4 * H + u0, narrow = (t * B + r0 + r) * H + u0;
        prefetch_gates<0>(d.gates + wide, H, n);
        for (int k = 0; k < 4; ++k) prefetch<0>(d.d_gates.at(k, t, r0 + r) + u0, n);
        for (const scalar_t* p : {d.d_hiddens, d.cells}) prefetch<0>(p + narrow, n);
      }
      if (has_later)  // dh_t = dZ_{t+1} W_hh
        recurrent_gradient(d.dz + t_later * B * 4 * H, d.packed, d.lengths, t_later, r0, rows, u, columns, H, d.dh_run,
                           panel_ahead(ahead ? next : nullptr, next_numel, tiles, (r0 - row_begin) / kRowBlock, 4 * H));
      if (!has_step) continue;
      for (int r = 0; r < rows; ++r) {
        const int64_t b = r0 + r, wide = (t * B + b) * 4 * H + u0, narrow = (t * B + b) * H + u0;
        scalar_t* dh = d.dh_total + narrow;
        if (!is_valid(d.lengths, b, t)) {  // padded: no gradient from this step, the state passes
          for (int64_t k = 0; k < 4; ++k) std::fill(d.dz + wide + k * H, d.dz + wide + k * H + n, scalar_t(0));
          std::fill(dh, dh + n, scalar_t(0));
          continue;
        }
        for (int64_t j = 0; j < n; ++j) dh[j] = d.d_hiddens[narrow + j] + d.dh_run[b * H + u0 + j];
        const scalar_t* c_prev = previous_cell(d.cells, d.c0, d.lengths, b, t, T, B, H, d.reverse) + u0;
        backward_units<scalar_t, Peephole, Cell>(d.gates + wide, d.cells + narrow, c_prev, dh,
                                                    d.d_gates.at(0, t, b) + u0, d.d_gates.at(1, t, b) + u0,
                                                    d.d_gates.at(2, t, b) + u0, d.d_gates.at(3, t, b) + u0,
                                                    d.d_cells + t * d.d_cells_step + b * H + u0,
                                                    Peephole ? d.peephole + u0 : nullptr, d.dz + wide,
                                                    d.dc_run + b * H + u0, n, H);
      }
    }
  }
}

// The whole backward loop: T steps and a last round for dL/dh_0.
template <typename scalar_t, bool Peephole, int Cell>
void backward_loop(const BackwardLoop<scalar_t>& d) {
  const int64_t blocks = blocks_of<scalar_t>(d.hidden);
  const auto split = backward_split<scalar_t>(d.batch, d.hidden);  // as packed
  if (split.rows) {
    run_rows(d.steps + 1, d.batch, split.threads, [&](int64_t round, int64_t row_begin, int64_t row_end) {
      backward_part<scalar_t, Peephole, Cell>(d, round, 0, blocks, row_begin, row_end);
    });
    return;
  }
  run_rounds(d.steps + 1, split.parts, split.threads, [&](int64_t part, int64_t round) {
    int64_t first, last;
    share(blocks, split.parts, part, first, last);
    backward_part<scalar_t, Peephole, Cell>(d, round, first, last, 0, d.batch);
  });
}

}  // namespace lstmlab_fused
