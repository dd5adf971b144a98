// Small-batch matrix products of the streaming step: out (R x N) = [init +] a (R x K) . W^T,
// with W (N x K) packed once into column panels so that each step streams the weights
// through memory exactly once, in order.
//
// Packed layout: N is cut into panels of kPanel columns (the last one narrower, padded to
// a multiple of kGemvLanes). Panel p holds rows k = 0..K-1 of its columns, contiguous, as
// W^T[k, cols]. One panel of a 1024-row product is 512 KiB, so it stays in L2 while every
// batch row uses it. The kernel broadcasts a[r, k] and multiplies one contiguous panel
// row: with AVX-512, 8 registers of 16 floats per batch row (up to 3 rows at once), the
// sums stay in registers for the whole K loop; with AVX2, blocks of 64 columns of one row.
// float64 (the test dtype) and other builds take a plain loop that the compiler vectorises. The input can come in two segments (x, then h), which lets one
// product cover [W_ih | W_hh] without copying x and h next to each other.
#pragma once

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace lstmlab_fused {

constexpr int64_t kGemvLanes = 16;                  // columns are padded to a multiple of this
constexpr int64_t kPanel = 8 * kGemvLanes;           // columns per panel (8 AVX-512 registers of floats)
constexpr int64_t kParallelMacs = int64_t(1) << 18;  // products smaller than this run on one thread

inline int64_t padded(int64_t n) { return (n + kGemvLanes - 1) / kGemvLanes * kGemvLanes; }

// W (N x K) packed into panels (see the file comment). `data` is empty when N or K is 0.
struct PackedMatrix {
  torch::Tensor data;
  int64_t rows = 0, cols = 0;  // K, N

  PackedMatrix() = default;

  // Packs w (N x K); several row-blocks of W may be given side by side in k: w = [w0 | w1].
  explicit PackedMatrix(const std::vector<torch::Tensor>& blocks) {
    cols = blocks.at(0).size(0);
    for (const auto& b : blocks) rows += b.size(1);
    data = torch::zeros({rows * padded(cols)}, blocks[0].options());
    AT_DISPATCH_FLOATING_TYPES(data.scalar_type(), "pack_matrix", [&] {
      scalar_t* out = data.data_ptr<scalar_t>();
      int64_t k0 = 0;
      for (const auto& block : blocks) {
        const auto w = block.contiguous();
        const scalar_t* src = w.data_ptr<scalar_t>();
        const int64_t width = w.size(1);
        for (int64_t n = 0; n < cols; ++n)
          for (int64_t k = 0; k < width; ++k) out[offset(k0 + k, n)] = src[n * width + k];
        k0 += width;
      }
    });
  }

  // Index of W^T[k, n] in `data`.
  int64_t offset(int64_t k, int64_t n) const {
    const int64_t panel = n / kPanel, start = panel * kPanel;
    return start * rows + k * panel_width(panel) + (n - start);
  }
  int64_t panels() const { return (cols + kPanel - 1) / kPanel; }
  int64_t panel_width(int64_t panel) const { return std::min(kPanel, padded(cols) - panel * kPanel); }
};

// The rows [0, R) of a, as up to two segments along k: a0 (R x k0, row stride lda0) then
// a1 (R x (K - k0), row stride lda1).
template <typename scalar_t>
struct GemvInput {
  const scalar_t* a0;
  int64_t lda0, k0;
  const scalar_t* a1;
  int64_t lda1;
};

#if defined(__AVX512F__)
// One panel (V registers wide) for R batch rows, float, AVX-512.
template <int R, int V>
inline void panel_f32(float* out, int64_t ldo, const float* init, const GemvInput<float>& in, const float* w,
                      int64_t k_total) {
  __m512 acc[R][V];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) acc[r][v] = init ? _mm512_loadu_ps(init + 16 * v) : _mm512_setzero_ps();
  auto segment = [&](const float* a, int64_t lda, int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const float* row = w + k * (16 * V);
      __m512 s[R];  // R broadcasts + one weight register + R * V sums: at most 3 + 1 + 24 of 32 registers
      for (int r = 0; r < R; ++r) s[r] = _mm512_set1_ps(a[r * lda + (k - begin)]);
      for (int v = 0; v < V; ++v) {
        const __m512 weight = _mm512_loadu_ps(row + 16 * v);
        for (int r = 0; r < R; ++r) acc[r][v] = _mm512_fmadd_ps(s[r], weight, acc[r][v]);
      }
    }
  };
  segment(in.a0, in.lda0, 0, in.k0);
  segment(in.a1, in.lda1, in.k0, k_total);
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) _mm512_storeu_ps(out + r * ldo + 16 * v, acc[r][v]);
}

template <int R>
inline void panel_f32_rows(float* out, int64_t ldo, const float* init, const GemvInput<float>& in, const float* w,
                           int64_t k_total, int64_t width) {
  switch (width / 16) {
    case 1: return panel_f32<R, 1>(out, ldo, init, in, w, k_total);
    case 2: return panel_f32<R, 2>(out, ldo, init, in, w, k_total);
    case 3: return panel_f32<R, 3>(out, ldo, init, in, w, k_total);
    case 4: return panel_f32<R, 4>(out, ldo, init, in, w, k_total);
    case 5: return panel_f32<R, 5>(out, ldo, init, in, w, k_total);
    case 6: return panel_f32<R, 6>(out, ldo, init, in, w, k_total);
    case 7: return panel_f32<R, 7>(out, ldo, init, in, w, k_total);
    default: return panel_f32<R, 8>(out, ldo, init, in, w, k_total);
  }
}
#endif

#if defined(__AVX2__) && !defined(__AVX512F__)
// Columns [0, 8 V) of one panel (row stride `width`) for one batch row, float, AVX2 (16
// registers: V = 8 sums, one weight, one broadcast).
template <int V>
inline void panel_f32_avx2(float* out, const float* init, const GemvInput<float>& in, const float* w,
                           int64_t k_total, int64_t width) {
  __m256 acc[V];
  for (int v = 0; v < V; ++v) acc[v] = init ? _mm256_loadu_ps(init + 8 * v) : _mm256_setzero_ps();
  for (int64_t k = 0; k < k_total; ++k) {
    const __m256 s = _mm256_set1_ps(k < in.k0 ? in.a0[k] : in.a1[k - in.k0]);
    const float* row = w + k * width;
    for (int v = 0; v < V; ++v) acc[v] = _mm256_fmadd_ps(s, _mm256_loadu_ps(row + 8 * v), acc[v]);
  }
  for (int v = 0; v < V; ++v) _mm256_storeu_ps(out + 8 * v, acc[v]);
}

// One panel for `rows` batch rows: column blocks of 64 (the last one 16, 32 or 48 wide).
inline void panel_f32_avx2_rows(float* out, int64_t ldo, const float* init, const GemvInput<float>& in,
                                const float* w, int64_t k_total, int64_t width, int64_t rows) {
  for (int64_t r = 0; r < rows; ++r) {
    const GemvInput<float> row_in{in.a0 + r * in.lda0, in.lda0, in.k0, in.a1 + r * in.lda1, in.lda1};
    for (int64_t col = 0; col < width; col += 64) {
      const float* block_init = init ? init + col : nullptr;
      float* block_out = out + r * ldo + col;
      switch (std::min<int64_t>(64, width - col) / 16) {
        case 1: panel_f32_avx2<2>(block_out, block_init, row_in, w + col, k_total, width); break;
        case 2: panel_f32_avx2<4>(block_out, block_init, row_in, w + col, k_total, width); break;
        case 3: panel_f32_avx2<6>(block_out, block_init, row_in, w + col, k_total, width); break;
        default: panel_f32_avx2<8>(block_out, block_init, row_in, w + col, k_total, width);
      }
    }
  }
}
#endif

// One panel for `rows` batch rows, any type: the compiler vectorises the j loops.
template <typename scalar_t>
inline void panel_generic(scalar_t* out, int64_t ldo, const scalar_t* init, const GemvInput<scalar_t>& in,
                          const scalar_t* w, int64_t k_total, int64_t width, int64_t rows) {
  for (int64_t r = 0; r < rows; ++r) {
    scalar_t acc[kPanel];
    for (int64_t j = 0; j < width; ++j) acc[j] = init ? init[j] : scalar_t(0);
    for (int64_t k = 0; k < k_total; ++k) {
      const scalar_t s = k < in.k0 ? in.a0[r * in.lda0 + k] : in.a1[r * in.lda1 + (k - in.k0)];
      const scalar_t* __restrict row = w + k * width;
      for (int64_t j = 0; j < width; ++j) acc[j] += s * row[j];
    }
    std::copy(acc, acc + width, out + r * ldo);
  }
}

// Rows [0, batch) of out (row stride ldo >= padded(N)) = [init (padded N) +] input . W^T.
// Columns beyond N (up to the padding) receive zeros plus init's padding.
template <typename scalar_t>
void gemv_packed(scalar_t* out, int64_t ldo, const scalar_t* init, GemvInput<scalar_t> in, const PackedMatrix& w,
                 int64_t batch) {
  const scalar_t* base = w.data.data_ptr<scalar_t>();
  const int64_t k_total = w.rows, panels = w.panels();
  auto run = [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t col = p * kPanel, width = w.panel_width(p);
      const scalar_t* panel = base + col * k_total;
      const scalar_t* panel_init = init ? init + col : nullptr;
      for (int64_t r = 0; r < batch;) {  // batch rows in groups that share each panel row load
        GemvInput<scalar_t> part{in.a0 + r * in.lda0, in.lda0, in.k0, in.a1 + r * in.lda1, in.lda1};
        scalar_t* out_rows = out + r * ldo + col;
#if defined(__AVX512F__)
        if constexpr (std::is_same_v<scalar_t, float>) {
          const int64_t take = std::min<int64_t>(3, batch - r);
          if (take == 3) panel_f32_rows<3>(out_rows, ldo, panel_init, part, panel, k_total, width);
          else if (take == 2) panel_f32_rows<2>(out_rows, ldo, panel_init, part, panel, k_total, width);
          else panel_f32_rows<1>(out_rows, ldo, panel_init, part, panel, k_total, width);
          r += take;
          continue;
        }
#elif defined(__AVX2__)
        if constexpr (std::is_same_v<scalar_t, float>) {
          panel_f32_avx2_rows(out_rows, ldo, panel_init, part, panel, k_total, width, batch - r);
          break;
        }
#endif
        panel_generic(out_rows, ldo, panel_init, part, panel, k_total, width, 1);
        r += 1;
      }
    }
  };
  const bool large = batch * k_total * w.cols >= kParallelMacs;
  if (panels > 1 && large && at::get_num_threads() > 1 && !at::in_parallel_region()) {
    at::parallel_for(0, panels, 1, run);
  } else {
    run(0, panels);
  }
}

}  // namespace lstmlab_fused
