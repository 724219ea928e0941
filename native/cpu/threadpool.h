// A persistent thread pool: threads are created once (per model) and reused by every op.
// parallel_for hands out [begin, end) chunks of an index range; the calling thread takes part.
// Hand-off without a syscall in the common case: a new job is published by bumping an atomic generation
// counter, which idle workers poll for a short while (10 µs with `pause`: longer hurts badly on an oversubscribed
// machine) before they sleep on a condition variable; the caller likewise polls the pending count before sleeping. A forward pass issues ~70 parallel_for calls back to back, so wake-up
// latency counts at batch 1.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace kst {

class ThreadPool {
 public:
  using Fn = std::function<void(int64_t begin, int64_t end, int tid)>;

  explicit ThreadPool(int nthreads);  // total threads including the caller; <= 0 means available cores
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  static constexpr int kMaxThreads = 256;  // the most threads a pool has (callers size per-thread state by it)
  int size() const { return n_; }
  // Runs fn over [0, n) in chunks of `grain` items. Not re-entrant: one parallel_for at a time.
  void parallel_for(int64_t n, int64_t grain, const Fn& fn);

  static int availableCores();

 private:
  void worker(int tid);
  void runChunks(int tid);

  int n_ = 1;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable wake_cv_, done_cv_;
  std::atomic<uint64_t> gen_{0};
  std::atomic<bool> stop_{false};
  std::atomic<int> pending_{0};
  int sleepers_ = 0;  // workers waiting on wake_cv_ (guarded by mu_)
  const Fn* fn_ = nullptr;
  int64_t items_ = 0, grain_ = 1;
  std::atomic<int64_t> next_{0};
};

// parallel_for that also accepts a null pool (runs inline on the caller, tid 0).
inline void parallelFor(ThreadPool* pool, int64_t n, int64_t grain, const ThreadPool::Fn& fn) {
  if (n <= 0) return;
  if (!pool || pool->size() <= 1 || n <= grain) {
    fn(0, n, 0);
    return;
  }
  pool->parallel_for(n, grain, fn);
}

inline int poolSize(const ThreadPool* pool) { return pool ? pool->size() : 1; }

}  // namespace kst
