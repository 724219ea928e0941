#include "threadpool.h"

#include <sched.h>

#include <algorithm>
#include <chrono>

namespace kst {

int ThreadPool::availableCores() {
#ifdef __linux__
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int c = CPU_COUNT(&set);
    if (c > 0) return c;
  }
#endif
  unsigned h = std::thread::hardware_concurrency();
  return h > 0 ? static_cast<int>(h) : 1;
}

ThreadPool::ThreadPool(int nthreads) {
  n_ = nthreads > 0 ? nthreads : availableCores();
  n_ = std::min(n_, kMaxThreads);
  threads_.reserve(n_ - 1);
  for (int t = 1; t < n_; ++t) threads_.emplace_back([this, t] { worker(t); });
}

namespace {
inline void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}
inline int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
// Polls done() until true (returns true) or `budget_ns` runs out (returns false).
template <typename F>
bool pollFor(F done, int64_t budget_ns) {
  const int64_t t0 = nowNs();
  for (int i = 1;; ++i) {
    if (done()) return true;
    if ((i & 31) == 0 && nowNs() - t0 > budget_ns) return false;
    cpuRelax();
  }
}
}  // namespace

template <typename F>
bool ThreadPool::poll(F done) {
  const int64_t budget = spin_ns_.load(std::memory_order_relaxed);
  const bool ok = pollFor(done, budget);
  // Additive increase on a wait that ended while polling, halving on one that did not (spin_ns_ says why). Threads
  // update it without a lock: a lost update only leaves another value inside the bounds.
  spin_ns_.store(ok ? std::min(kSpinMaxNs, budget + kSpinStepNs) : std::max(kSpinMinNs, budget / 2),
                 std::memory_order_relaxed);
  return ok;
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_.store(true);
  }
  wake_cv_.notify_all();
  for (auto& th : threads_) th.join();
}

void ThreadPool::runChunks(int tid) {
  for (;;) {
    int64_t b = next_.fetch_add(grain_, std::memory_order_relaxed);
    if (b >= items_) break;
    (*fn_)(b, std::min(b + grain_, items_), tid);
  }
}

void ThreadPool::worker(int tid) {
  uint64_t seen = 0;
  for (;;) {
    if (!poll([&] { return gen_.load(std::memory_order_acquire) != seen || stop_.load(std::memory_order_relaxed); })) {
      std::unique_lock<std::mutex> lk(mu_);
      ++sleepers_;
      wake_cv_.wait(lk, [&] { return stop_.load() || gen_.load() != seen; });
      --sleepers_;
    }
    if (stop_.load()) return;
    seen = gen_.load(std::memory_order_acquire);
    runChunks(tid);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lk(mu_);  // pairs with the caller's predicate check under mu_
      done_cv_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const Fn& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  if (n_ <= 1 || n <= grain) {
    fn(0, n, 0);
    return;
  }
  fn_ = &fn;
  items_ = n;
  grain_ = grain;
  next_.store(0, std::memory_order_relaxed);
  pending_.store(n_ - 1, std::memory_order_relaxed);
  bool wake;
  {
    std::lock_guard<std::mutex> lk(mu_);
    gen_.fetch_add(1, std::memory_order_release);  // publishes fn_, items_, grain_ to the workers
    wake = sleepers_ > 0;
  }
  if (wake) wake_cv_.notify_all();
  runChunks(0);
  if (!poll([&] { return pending_.load(std::memory_order_acquire) == 0; })) {
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [&] { return pending_.load(std::memory_order_acquire) == 0; });
  }
  fn_ = nullptr;
}

}  // namespace kst
