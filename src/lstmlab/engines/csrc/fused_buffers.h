// Recycled memory for the loops' big buffers (gates, cells, hidden states, dZ, ...).
//
// A (T, B, 4H) buffer fresh from the OS costs a page fault per 4 KiB page on first touch:
// about 10 ms for 50 MB on the 2-core machine, as much as the recurrent arithmetic of a
// training step at some shapes, paid again every call because glibc hands blocks above
// 32 MB back to the OS on free. Tensors made by `pooled_empty` return their memory to a
// pool when their last reference dies (the trace, autograd's saved tensors, the caller's
// gradient), and the next call of the same shape takes it from there, already mapped.
//
// The pool keeps freed blocks by exact size, holds at most `limit` bytes (blocks that do
// not fit are freed at once), and never holds memory that is in use: a block enters it
// only from a tensor's deleter. Small buffers (below kPooledMinBytes) use torch::empty.
#pragma once

#include <torch/extension.h>

#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <map>
#include <mutex>

namespace lstmlab_fused {

constexpr int64_t kPooledMinBytes = 1 << 20;  // below this, page faults cost little

class BufferPool {
 public:
  // A block of `bytes` (64-byte aligned): a cached one of that size, or a new one.
  // (multimap keeps equal keys in insertion order, so the last of a size is the newest.)
  void* take(int64_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // The block freed last (its lines are the likeliest still in cache).
      const auto range = free_.equal_range(bytes);
      if (range.first != range.second) {
        const auto found = std::prev(range.second);
        void* block = found->second;
        free_.erase(found);
        cached_ -= bytes;
        return block;
      }
    }
    void* block = std::aligned_alloc(64, static_cast<size_t>((bytes + 63) / 64 * 64));
    TORCH_CHECK(block != nullptr, "lstmlab fused engine: out of memory allocating ", bytes, " bytes");
    return block;
  }

  // Takes back a block from `take` (cached if the limit allows, else freed).
  void give(void* block, int64_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (cached_ + bytes <= limit_) {
        free_.emplace(bytes, block);
        cached_ += bytes;
        return;
      }
    }
    std::free(block);
  }

  // Frees every cached block; returns the bytes released.
  int64_t release() {
    std::multimap<int64_t, void*> blocks;
    int64_t released;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      blocks.swap(free_);
      released = cached_;
      cached_ = 0;
    }
    for (auto& entry : blocks) std::free(entry.second);
    return released;
  }

  // Sets the most bytes the pool may hold (0: none, every block is freed at once).
  void set_limit(int64_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      limit_ = bytes;
    }
    if (cached() > bytes) release();
  }

  int64_t cached() {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_;
  }

  int64_t limit() {
    std::lock_guard<std::mutex> lock(mutex_);
    return limit_;
  }

 private:
  std::mutex mutex_;
  std::multimap<int64_t, void*> free_;  // size -> cached block
  int64_t cached_ = 0;
  int64_t limit_ = int64_t(1) << 30;
};

// The process's pool. Never destroyed: tensors may die after static destructors ran.
inline BufferPool& buffer_pool() {
  static BufferPool* pool = new BufferPool();
  return *pool;
}

// torch::empty(sizes, options) whose memory comes from, and returns to, the pool.
inline torch::Tensor pooled_empty(at::IntArrayRef sizes, const torch::TensorOptions& options) {
  int64_t numel = 1;
  for (int64_t size : sizes) numel *= size;
  const int64_t bytes = numel * static_cast<int64_t>(c10::elementSize(c10::typeMetaToScalarType(options.dtype())));
  if (bytes < kPooledMinBytes || !options.device().is_cpu()) return torch::empty(sizes, options);
  void* block = buffer_pool().take(bytes);
  return torch::from_blob(block, sizes, [bytes](void* data) { buffer_pool().give(data, bytes); }, options);
}

inline torch::Tensor pooled_empty_like(const torch::Tensor& like) {
  return pooled_empty(like.sizes(), like.options());
}

}  // namespace lstmlab_fused
