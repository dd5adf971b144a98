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
// Backward panel layout: columns of h in blocks of L; block u's panel is (4H, L): row q
// holds W_hh[q, u*L + l]. Lanes past H (or P) hold zeros.
#pragma once

#include <torch/extension.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

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

// Forward panels of w (4H, P): (blocks(H), P, 4, L), zero-padded past H (also W_ih, P = I).
template <typename scalar_t>
torch::Tensor pack_forward(const torch::Tensor& w, int64_t hidden) {
  constexpr int L = kLanes<scalar_t>;
  const int64_t width = w.size(1), blocks = blocks_of<scalar_t>(hidden);
  auto packed = torch::zeros({blocks, width, 4, L}, w.options());
  const scalar_t* src = w.data_ptr<scalar_t>();
  scalar_t* dst = packed.data_ptr<scalar_t>();
  for (int64_t u = 0; u < blocks; ++u)
    for (int64_t k = 0; k < 4; ++k)
      for (int64_t l = 0; l < L && u * L + l < hidden; ++l) {
        const scalar_t* row = src + (k * hidden + u * L + l) * width;
        scalar_t* col = dst + u * width * 4 * L + k * L + l;
        for (int64_t q = 0; q < width; ++q) col[q * 4 * L] = row[q];
      }
  return packed;
}

// Backward panels of w (4H, P): (blocks(P), 4H, L), zero-padded past P.
template <typename scalar_t>
torch::Tensor pack_backward(const torch::Tensor& w) {
  constexpr int L = kLanes<scalar_t>;
  const int64_t rows = w.size(0), width = w.size(1), blocks = blocks_of<scalar_t>(width);
  auto packed = torch::zeros({blocks, rows, L}, w.options());
  const scalar_t* src = w.data_ptr<scalar_t>();
  scalar_t* dst = packed.data_ptr<scalar_t>();
  for (int64_t u = 0; u < blocks; ++u) {
    const int64_t n = std::min<int64_t>(L, width - u * L);
    for (int64_t q = 0; q < rows; ++q) std::copy(src + q * width + u * L, src + q * width + u * L + n, dst + (u * rows + q) * L);
  }
  return packed;
}

// tile (R, 4, L) [+]= a[rows] (R, K) . panel (K, 4L): the four gates of one unit block for
// R batch rows (a's rows `stride` apart). R accumulators x 4 gates stay in registers.
template <typename scalar_t, int R>
inline void tile_forward(scalar_t* __restrict tile, const scalar_t* __restrict a, int64_t stride,
                         const scalar_t* __restrict panel, int64_t depth, bool accumulate) {
  using V = vec_t<scalar_t>;
  constexpr int L = kLanes<scalar_t>;
  V acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < 4; ++k) acc[r][k] = accumulate ? load(tile + (r * 4 + k) * L) : V{};
  for (int64_t q = 0; q < depth; ++q) {
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
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < 4; ++k) store(tile + (r * 4 + k) * L, acc[r][k]);
}

// tile (R, L) = a[rows] (R, K) . panel (K, L), K = 4H: one column block of dh for R batch
// rows. Two accumulators per row (even and odd k) hide the FMA latency.
template <typename scalar_t, int R>
inline void tile_backward(scalar_t* __restrict tile, const scalar_t* __restrict a, int64_t stride,
                          const scalar_t* __restrict panel, int64_t depth) {
  using V = vec_t<scalar_t>;
  constexpr int L = kLanes<scalar_t>;
  V even[R], odd[R];
  for (int r = 0; r < R; ++r) even[r] = odd[r] = V{};
  int64_t q = 0;
  for (; q + 1 < depth; q += 2) {
    const V w0 = load(panel + q * L), w1 = load(panel + (q + 1) * L);
    for (int r = 0; r < R; ++r) {
      even[r] += a[r * stride + q] * w0;
      odd[r] += a[r * stride + q + 1] * w1;
    }
  }
  if (q < depth) {
    const V w0 = load(panel + q * L);
    for (int r = 0; r < R; ++r) even[r] += a[r * stride + q] * w0;
  }
  for (int r = 0; r < R; ++r) store(tile + r * L, even[r] + odd[r]);
}

// The tile kernels with R = rows (1 .. kRowBlock) as a compile-time constant.
template <typename scalar_t>
inline void tile_forward_rows(int rows, scalar_t* tile, const scalar_t* a, int64_t stride, const scalar_t* panel,
                              int64_t depth, bool accumulate = false) {
  switch (rows) {
    case 1: return tile_forward<scalar_t, 1>(tile, a, stride, panel, depth, accumulate);
    case 2: return tile_forward<scalar_t, 2>(tile, a, stride, panel, depth, accumulate);
    case 3: return tile_forward<scalar_t, 3>(tile, a, stride, panel, depth, accumulate);
#if defined(__AVX512F__)
    case 4: return tile_forward<scalar_t, 4>(tile, a, stride, panel, depth, accumulate);
    case 5: return tile_forward<scalar_t, 5>(tile, a, stride, panel, depth, accumulate);
    case 6: return tile_forward<scalar_t, 6>(tile, a, stride, panel, depth, accumulate);
#endif
    default: TORCH_CHECK(false, "tile_forward_rows: rows out of range");
  }
}

template <typename scalar_t>
inline void tile_backward_rows(int rows, scalar_t* tile, const scalar_t* a, int64_t stride, const scalar_t* panel,
                               int64_t depth) {
  switch (rows) {
    case 1: return tile_backward<scalar_t, 1>(tile, a, stride, panel, depth);
    case 2: return tile_backward<scalar_t, 2>(tile, a, stride, panel, depth);
    case 3: return tile_backward<scalar_t, 3>(tile, a, stride, panel, depth);
#if defined(__AVX512F__)
    case 4: return tile_backward<scalar_t, 4>(tile, a, stride, panel, depth);
    case 5: return tile_backward<scalar_t, 5>(tile, a, stride, panel, depth);
    case 6: return tile_backward<scalar_t, 6>(tile, a, stride, panel, depth);
#endif
    default: TORCH_CHECK(false, "tile_backward_rows: rows out of range");
  }
}

}  // namespace lstmlab_fused
