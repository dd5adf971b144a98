// A thread team for a sequence of dependent rounds (the time steps of an LSTM loop),
// with one wait per round and no deadlock whatever the thread pool does.
//
// Each round's work is cut into `parts` (e.g. ranges of hidden units); round r+1 may
// read anything round r wrote. The team is torch's own pool (at::parallel_for over the
// thread count), so the extension needs no OpenMP runtime of its own (a second runtime
// would spin against torch's libgomp on the same cores).
//
// Why not a plain barrier: at::parallel_for may give one invocation several indices, run
// the invocations one after another (nested in another parallel region, or one thread),
// or start one late on a busy machine. A barrier that counts threads would deadlock or
// stall there. Instead parts are *claimed*: a part of round r is taken by whichever thread
// claims it first (each thread tries its own part first, so on a quiet machine every
// thread keeps its own weights in its own cache), and round r+1 starts once all parts of
// round r are *done*. A thread only ever waits for parts that a running thread has
// claimed, so one thread alone finishes everything, and a descheduled thread's part is
// taken over instead of waited for.
// On a machine busier than its cores (other processes), a thread that holds a part can
// still be descheduled for a whole time slice, and every round waits for it. So the team
// counts stalls (a wait longer than the waiter's own work in that round); after a few,
// if they are frequent, it goes solo: the other threads leave at the next round and the caller's thread
// finishes alone, which is then the faster choice.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace lstmlab_fused {

constexpr int64_t kMaxParts = 64;
constexpr int kStallsBeforeSolo = 4;
constexpr int64_t kStallSlackNs = 20000;  // waits this much longer than the own work count as stalls

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

// Shared state of one team run: per part, the last round claimed; overall, parts done.
struct TeamState {
  std::atomic<int64_t> claimed[kMaxParts];
  std::atomic<int64_t> done{0};
  std::atomic<int> stalls{0};
  std::atomic<bool> solo{false};
  explicit TeamState(int64_t parts) {
    for (int64_t p = 0; p < parts; ++p) claimed[p].store(-1, std::memory_order_relaxed);
  }
};

// Spins until at least `target` parts are done; yields the core now and then, since the
// thread it waits for may need this very core (2 cores shared with other processes).
inline void wait_done(const TeamState& state, int64_t target) {
  for (int64_t spins = 0; state.done.load(std::memory_order_acquire) < target; ++spins) {
    if (spins < 256) cpu_relax();  // ~10-40 us (a pause costs 40-140 cycles), then give the core away
    else std::this_thread::yield();
  }
}

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// One thread's share: every round, wait for the previous one, then claim and run parts,
// starting with part `first` (this thread's own). The caller's thread (`owner`) stays
// to the end; the others leave once the team has gone solo.
template <typename Work>
void team_member(TeamState& state, int64_t rounds, int64_t parts, int64_t first, bool owner, const Work& work) {
  int64_t worked_ns = 0;  // own work in the previous round
  for (int64_t round = state.done.load(std::memory_order_acquire) / parts; round < rounds; ++round) {
    if (!owner && state.solo.load(std::memory_order_relaxed)) return;
    const int64_t wait_start = now_ns();
    wait_done(state, round * parts);
    const int64_t work_start = now_ns();
    if (worked_ns > 0 && work_start - wait_start > worked_ns + kStallSlackNs) {
      // Solo once stalls are both several and frequent (1 round in 8): a rare hiccup on a
      // quiet machine keeps the team.
      const int stalls = state.stalls.fetch_add(1, std::memory_order_relaxed) + 1;
      if (stalls >= kStallsBeforeSolo && 8 * stalls >= round + 1) state.solo.store(true, std::memory_order_relaxed);
    }
    for (int64_t k = 0; k < parts; ++k) {
      const int64_t part = (first + k) % parts;
      int64_t expected = round - 1;
      if (!state.claimed[part].compare_exchange_strong(expected, round, std::memory_order_acq_rel)) continue;
      work(part, round);
      state.done.fetch_add(1, std::memory_order_acq_rel);
    }
    worked_ns = now_ns() - work_start;
  }
}

// Runs work(part, round) for every round in order and every part of it, on up to
// `threads` threads (the caller's pool); serially when threads <= 1, parts <= 1, or when
// already inside a parallel region. Returns after everything is done.
template <typename Work>
void run_rounds(int64_t rounds, int64_t parts, int64_t threads, const Work& work) {
  parts = std::min(parts, kMaxParts);
  if (threads <= 1 || parts <= 1 || at::in_parallel_region()) {
    for (int64_t round = 0; round < rounds; ++round)
      for (int64_t part = 0; part < parts; ++part) work(part, round);
    return;
  }
  TeamState state(parts);
  at::parallel_for(0, threads, 1, [&](int64_t begin, int64_t end) {
    (void)end;
    team_member(state, rounds, parts, begin % parts, begin == 0, work);
  });
  // Every invocation has returned, and a round ends only when all its parts are done; a
  // pool that ran fewer invocations than asked still finished everything (see above).
}

// Runs work(round, row_begin, row_end) for every round in order, the `batch` rows split
// into up to `threads` ranges that run side by side with no wait between them: for work
// whose rounds depend only on the same rows' earlier rounds. Any schedule the pool
// chooses (one thread, or ranges one after another) gives the same result.
template <typename Work>
void run_rows(int64_t rounds, int64_t batch, int64_t threads, const Work& work) {
  const int64_t chunk = (batch + threads - 1) / std::max<int64_t>(threads, 1);
  at::parallel_for(0, batch, chunk, [&](int64_t begin, int64_t end) {
    for (int64_t round = 0; round < rounds; ++round) work(round, begin, end);
  });
}

}  // namespace lstmlab_fused
