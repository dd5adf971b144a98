// W_hh packed once per call into panels, and register-blocked micro-kernels for the
// per-step recurrent products, forward (z += h W_hh^T) and backward (dh = dz W_hh).
//
// The vectors are GCC vector extensions of the build's width (64 bytes with AVX-512,
// 32 with AVX2, 16 otherwise), so one source serves every build; float and double alike
// (kLanes<scalar_t> numbers per vector).
//
// Forward panel layout: hidden units in blocks of L = kLanes; block u's panel is (P, 4L):
// row q holds W_hh[k*H + u*L + l, q] for gates k = i, f, g, o and lanes l. One tile of
// the kernel is R batch rows x 4 vectors: all four gates of the same L units, so the gate
// math for those units runs right after the tile, on data still in L1.
// Backward panel layout: columns of h in blocks of L, grouped by up to kColumnGroup
// blocks; group [s, s + c)'s panel is (4H, c, L): row q holds W_hh[q, (s + k)*L + l] for
// k < c. Lanes past H (or P) hold zeros. One backward tile is R batch rows x c vectors.
#pragma once

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "fused_buffers.h"

namespace lstmlab_fused {

#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
constexpr int kRowBlock = 6;  // 6 rows x 4 gates = 24 of the 32 vector registers
#elif defined(__AVX__)
constexpr int kVectorBytes = 32;
constexpr int kRowBlock = 3;  // 12 of the 16 registers (W comes from memory operands)
#else
constexpr int kVectorBytes = 16;
constexpr int kRowBlock = 3;
#endif

template <typename scalar_t>
constexpr int kLanes = kVectorBytes / static_cast<int>(sizeof(scalar_t));

template <typename scalar_t>
struct Vec {
  typedef scalar_t type __attribute__((vector_size(kVectorBytes)));
};
template <typename scalar_t>
using vec_t = typename Vec<scalar_t>::type;

template <typename scalar_t>
inline vec_t<scalar_t> load(const scalar_t* p) {
  vec_t<scalar_t> v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
template <typename scalar_t>
inline void store(scalar_t* p, vec_t<scalar_t> v) {
  std::memcpy(p, &v, sizeof(v));
}

// Number of L-wide blocks covering n.
template <typename scalar_t>
inline int64_t blocks_of(int64_t n) {
  return (n + kLanes<scalar_t> - 1) / kLanes<scalar_t>;
}

// Chunks of a packing loop whose items hold `item_numel` numbers each: ~64K numbers per
// chunk, so that packing a small matrix stays on the calling thread.
inline int64_t pack_grain(int64_t item_numel) {
  return std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, item_numel));
}

// Forward panels of w (4H, P): (blocks(H), P, 4, L), zero-padded past H (also W_ih, P = I).
// Written in order (each panel row gathers one column of the block's 4L rows of w, whose
// cache lines stay in L1): the other order, a strided write per number, cost ~0.6 ms per
// call at H=256 and ~5 ms at H=650. The buffer comes from the pool (fused_buffers.h).
template <typename scalar_t>
torch::Tensor pack_forward(const torch::Tensor& w, int64_t hidden) {
  constexpr int L = kLanes<scalar_t>;
  const int64_t width = w.size(1), blocks = blocks_of<scalar_t>(hidden);
  auto packed = pooled_empty({blocks, width, 4, L}, w.options());
  const scalar_t* src = w.data_ptr<scalar_t>();
  scalar_t* dst = packed.data_ptr<scalar_t>();
  at::parallel_for(0, blocks, pack_grain(width * 4 * L), [&](int64_t begin, int64_t end) {
    for (int64_t u = begin; u < end; ++u) {
      const int64_t n = std::min<int64_t>(L, hidden - u * L);  // lanes past H hold zeros
      for (int64_t q = 0; q < width; ++q) {
        scalar_t* out = dst + (u * width + q) * 4 * L;
        for (int64_t k = 0; k < 4; ++k) {
          const scalar_t* column = src + (k * hidden + u * L) * width + q;
          for (int64_t l = 0; l < n; ++l) out[k * L + l] = column[l * width];
          std::fill(out + k * L + n, out + (k + 1) * L, scalar_t(0));
        }
      }
    }
  });
  return packed;
}

// Contiguous share [first, last) of `blocks` for part `part` of `parts`.
inline void share(int64_t blocks, int64_t parts, int64_t part, int64_t& first, int64_t& last) {
  first = blocks * part / parts;
  last = blocks * (part + 1) / parts;
}

// The next panel's share that one tile asks for into L2 while it computes: `per_step`
// cache lines at `next` for each of its depth steps (none when next is null). Where the
// weights do not fit in a core's L2, each panel comes from L3 once per step; asked for
// ahead, it is there when its tiles start (one thread, forward loop at H = 650, B = 20:
// 650 -> 490 us per step; B = 32, H = 512: 536 -> 446 us).
struct PanelAhead {
  const char* next = nullptr;
  int64_t per_step = 0;
};

// Tile `index` of the `tiles` (each `depth` steps deep) that compute one panel: its share
// of the `numel` numbers at `next` (the panel after it), a contiguous range of lines.
template <typename scalar_t>
inline PanelAhead panel_ahead(const scalar_t* next, int64_t numel, int64_t tiles, int64_t index, int64_t depth) {
  const int64_t lines = (numel * static_cast<int64_t>(sizeof(scalar_t)) + 63) / 64;
  const int64_t per_step = (lines + tiles * depth - 1) / std::max<int64_t>(1, tiles * depth);
  const int64_t first = index * depth * per_step;
  if (next == nullptr || first >= lines) return {};
  return {reinterpret_cast<const char*>(next) + 64 * first, per_step};
}

// Asks for step q's lines of a tile's PanelAhead share (locality 2: into L2, not L1).
inline void fetch_ahead(const PanelAhead& ahead, int64_t q) {
  for (int64_t j = 0; j < ahead.per_step; ++j) __builtin_prefetch(ahead.next + 64 * (q * ahead.per_step + j), 0, 2);
}

// A backward tile covers up to kColumnGroup column blocks of dh (R rows x C vectors of
// accumulators: each W_hh load serves R rows, each dZ number C vectors).
constexpr int kColumnGroup = 4;

// Backward panels of w (4H, P) for `parts` parts: column blocks of L, each part's share
// [first, last) (see share) cut into groups [s, s + c), c <= kColumnGroup, from `first` on;
// group [s, s + c) is stored as (4H, c, L) at offset s * 4H * L, so one tile reads one
// contiguous panel. Lanes past P hold zeros.
template <typename scalar_t>
torch::Tensor pack_backward(const torch::Tensor& w, int64_t parts) {
  constexpr int L = kLanes<scalar_t>;
  const int64_t rows = w.size(0), width = w.size(1), blocks = blocks_of<scalar_t>(width);
  auto packed = pooled_empty({blocks, rows, L}, w.options());
  const scalar_t* src = w.data_ptr<scalar_t>();
  scalar_t* dst = packed.data_ptr<scalar_t>();
  at::parallel_for(0, rows, pack_grain(blocks * L), [&](int64_t begin, int64_t end) {
    for (int64_t part = 0; part < parts; ++part) {
      int64_t first, last;
      share(blocks, parts, part, first, last);
      for (int64_t s = first; s < last; s += kColumnGroup) {
        const int64_t c = std::min<int64_t>(kColumnGroup, last - s);
        scalar_t* panel = dst + s * rows * L;
        for (int64_t q = begin; q < end; ++q)
          for (int64_t k = 0; k < c; ++k) {
            const int64_t col = (s + k) * L, n = std::min<int64_t>(L, width - col);
            scalar_t* out = panel + (q * c + k) * L;
            std::copy(src + q * width + col, src + q * width + col + n, out);
            std::fill(out + n, out + L, scalar_t(0));  // lanes past P
          }
      }
    }
  });
  return packed;
}

// tile (R, 4, L) [+]= a[rows] (R, K) . panel (K, 4L): the four gates of one unit block for
// R batch rows (a's rows `stride` apart). R accumulators x 4 gates stay in registers.
template <typename scalar_t, int R>
inline void tile_forward(scalar_t* __restrict tile, const scalar_t* __restrict a, int64_t stride,
                         const scalar_t* __restrict panel, int64_t depth, bool accumulate, PanelAhead ahead) {
  using V = vec_t<scalar_t>;
  constexpr int L = kLanes<scalar_t>;
  V acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < 4; ++k) acc[r][k] = accumulate ? load(tile + (r * 4 + k) * L) : V{};
  auto steps = [&](auto fetch) {  // fetch: whether to ask for `ahead` (two loops, no test in the one without)
    for (int64_t q = 0; q < depth; ++q) {
      if constexpr (decltype(fetch)::value) fetch_ahead(ahead, q);
      const scalar_t* w = panel + q * 4 * L;
      const V w0 = load(w), w1 = load(w + L), w2 = load(w + 2 * L), w3 = load(w + 3 * L);
      for (int r = 0; r < R; ++r) {
        const scalar_t s = a[r * stride + q];
        acc[r][0] += s * w0;
        acc[r][1] += s * w1;
        acc[r][2] += s * w2;
        acc[r][3] += s * w3;
      }
    }
  };
  if (ahead.next) steps(std::true_type{});
  else steps(std::false_type{});
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < 4; ++k) store(tile + (r * 4 + k) * L, acc[r][k]);
}

// tile (R, C, L) = a[rows] (R, K) . panel (K, C, L), K = 4H: C column blocks of dh for R
// batch rows. With fewer than 8 accumulators, even and odd k get separate ones, to
// hide the FMA latency.
template <typename scalar_t, int R, int C>
inline void tile_backward(scalar_t* __restrict tile, const scalar_t* __restrict a, int64_t stride,
                          const scalar_t* __restrict panel, int64_t depth, PanelAhead ahead) {
  using V = vec_t<scalar_t>;
  constexpr int L = kLanes<scalar_t>;
  constexpr int kSets = R * C < 8 ? 2 : 1;
  V acc[kSets][R][C];
  for (int s = 0; s < kSets; ++s)
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) acc[s][r][c] = V{};
  int64_t q = 0;
  auto steps = [&](auto fetch) {  // as in tile_forward
    for (; q + kSets <= depth; q += kSets)
      for (int s = 0; s < kSets; ++s) {
        if constexpr (decltype(fetch)::value) fetch_ahead(ahead, q + s);
        const scalar_t* w = panel + (q + s) * C * L;
        V wc[C];
        for (int c = 0; c < C; ++c) wc[c] = load(w + c * L);
        for (int r = 0; r < R; ++r) {
          const scalar_t x = a[r * stride + q + s];
          for (int c = 0; c < C; ++c) acc[s][r][c] += x * wc[c];
        }
      }
  };
  if (ahead.next) steps(std::true_type{});
  else steps(std::false_type{});
  for (; q < depth; ++q)
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) acc[0][r][c] += a[r * stride + q] * load(panel + (q * C + c) * L);
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      V sum = acc[0][r][c];
      if constexpr (kSets == 2) sum += acc[1][r][c];
      store(tile + (r * C + c) * L, sum);
    }
}

// The tile kernels with R = rows (1 .. kRowBlock) as a compile-time constant.
template <typename scalar_t>
inline void tile_forward_rows(int rows, scalar_t* tile, const scalar_t* a, int64_t stride, const scalar_t* panel,
                              int64_t depth, bool accumulate = false, PanelAhead ahead = {}) {
  switch (rows) {
    case 1: return tile_forward<scalar_t, 1>(tile, a, stride, panel, depth, accumulate, ahead);
    case 2: return tile_forward<scalar_t, 2>(tile, a, stride, panel, depth, accumulate, ahead);
    case 3: return tile_forward<scalar_t, 3>(tile, a, stride, panel, depth, accumulate, ahead);
#if defined(__AVX512F__)
    case 4: return tile_forward<scalar_t, 4>(tile, a, stride, panel, depth, accumulate, ahead);
    case 5: return tile_forward<scalar_t, 5>(tile, a, stride, panel, depth, accumulate, ahead);
    case 6: return tile_forward<scalar_t, 6>(tile, a, stride, panel, depth, accumulate, ahead);
#endif
    default: TORCH_CHECK(false, "tile_forward_rows: rows out of range");
  }
}

template <typename scalar_t, int C>
inline void tile_backward_group(int rows, scalar_t* tile, const scalar_t* a, int64_t stride, const scalar_t* panel,
                                int64_t depth, PanelAhead ahead) {
  switch (rows) {
    case 1: return tile_backward<scalar_t, 1, C>(tile, a, stride, panel, depth, ahead);
    case 2: return tile_backward<scalar_t, 2, C>(tile, a, stride, panel, depth, ahead);
    case 3: return tile_backward<scalar_t, 3, C>(tile, a, stride, panel, depth, ahead);
#if defined(__AVX512F__)
    case 4: return tile_backward<scalar_t, 4, C>(tile, a, stride, panel, depth, ahead);
    case 5: return tile_backward<scalar_t, 5, C>(tile, a, stride, panel, depth, ahead);
    case 6: return tile_backward<scalar_t, 6, C>(tile, a, stride, panel, depth, ahead);
#endif
    default: TORCH_CHECK(false, "tile_backward_rows: rows out of range");
  }
}

// The backward tile with R = rows (1 .. kRowBlock) and C = columns (1 .. kColumnGroup).
template <typename scalar_t>
inline void tile_backward_rows(int rows, int columns, scalar_t* tile, const scalar_t* a, int64_t stride,
                               const scalar_t* panel, int64_t depth, PanelAhead ahead = {}) {
  switch (columns) {
    case 1: return tile_backward_group<scalar_t, 1>(rows, tile, a, stride, panel, depth, ahead);
    case 2: return tile_backward_group<scalar_t, 2>(rows, tile, a, stride, panel, depth, ahead);
    case 3: return tile_backward_group<scalar_t, 3>(rows, tile, a, stride, panel, depth, ahead);
    case 4: return tile_backward_group<scalar_t, 4>(rows, tile, a, stride, panel, depth, ahead);
    default: TORCH_CHECK(false, "tile_backward_rows: columns out of range");
  }
}

}  // namespace lstmlab_fused
