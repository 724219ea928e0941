#include "threadpool.h"

#include <sched.h>

#include <algorithm>

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
  n_ = std::min(n_, 256);
  threads_.reserve(n_ - 1);
  for (int t = 1; t < n_; ++t) threads_.emplace_back([this, t] { worker(t); });
}

namespace {
// Polling budget before sleeping (each pause is ~10-150 cycles depending on the core).
constexpr int kSpin = 1 << 14;
inline void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}
}  // namespace

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
    int spins = 0;
    while (gen_.load(std::memory_order_acquire) == seen && !stop_.load(std::memory_order_relaxed)) {
      if (++spins < kSpin) {
        cpuRelax();
        continue;
      }
      std::unique_lock<std::mutex> lk(mu_);
      ++sleepers_;
      wake_cv_.wait(lk, [&] { return stop_.load() || gen_.load() != seen; });
      --sleepers_;
      break;
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
  for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < kSpin) {
      cpuRelax();
      continue;
    }
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [&] { return pending_.load(std::memory_order_acquire) == 0; });
    break;
  }
  fn_ = nullptr;
}

}  // namespace kst
