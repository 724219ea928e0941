// A persistent thread pool: threads are created once (per model) and reused by every op.
// parallel_for hands out [begin, end) chunks of an index range; the calling thread takes part.
// Hand-off without a syscall in the common case: a new job is published by bumping an atomic generation
// counter, which idle workers poll for a while (10-50 µs with `pause`, adaptive: see spin_ns_) before they sleep on
// a condition variable; the caller likewise polls the count of finished chunks before sleeping. A forward pass
// issues ~60 parallel_for calls back to back, so wake-up latency counts at batch 1.
// After a pause the first calls used to run at one thread's speed: the caller (in Node, whichever libuv thread took
// the call) waited for sleeping workers to check in, and a woken worker was often placed on the caller's CPU, where
// the two shared a core. Three changes (threadpool.cpp): the caller waits for the job's chunks only; a worker that
// starts on the caller's CPU moves off it; inside a forward pass (Hold) threads wait with sched_yield instead of
// sleeping; the last two stand down when the system has more runnable threads than CPUs. Measured, 12-token
// sentence, 2 threads, 2 vCPUs, two alternating runs each, before → after: first call after each of 12 pauses of
// 0.5 s, median 21.9 / 24.0 → 14.3 / 14.3 ms; mean of the 5 calls after each pause 16.9 / 18.0 → 13.5 / 13.5 ms,
// calls over 16 ms 22 / 27 → 1 / 0 of 60; the first call after 0.5 s in 15 rounds, median 25.6 / 26.1 → 14.8 /
// 15.0 ms; back to back p50 12.72 / 12.36 → 12.49 / 12.35 ms; two 2-thread models encoding at once 74.3 / 72.4 →
// 71.7 / 73.6 sentences/s; beside 4 busy loops, p50 46.5 / 45.1 → 44.4 / 45.4 ms.
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
  // Runs fn over [0, n) in chunks of `grain` items. Not re-entrant: one parallel_for at a time. The workers run
  // the chunks with the caller's floating-point control bits (x86 MXCSR: rounding, FTZ / DAZ), so a chunk's
  // arithmetic does not depend on which thread took it.
  void parallel_for(int64_t n, int64_t grain, const Fn& fn);

  static int availableCores();

  // For one forward pass: subnormal floats read and written as zero on the calling thread (x86: MXCSR's DAZ and
  // FTZ; nothing elsewhere), the caller's bits restored at the end; the workers follow the caller per job. Why:
  // an operation with a subnormal input or result runs in microcode on Intel CPUs. Measured (128 × 3072 × 768
  // GEMM, 2 threads, AVX-512 kernels): 8 of x's 768 columns subnormal 220 → 76 GFLOP/s; the weights are flushed
  // when packed (gemm_driver.h, flushSubnormal), activations only here. End to end, the 12 × 768 random KoBERT with
  // γ = 1e-39, β = 0 in 8 of 768 dims of every embedding / FFN-output LayerNorm (2 threads, p50): 1 × 64 tokens
  // 96-116 → 43-45 ms, 8 × 16: 193-238 → 98-104 ms. A value that small (< 1.2e-38) is below the last bit of any sum
  // it joins unless that sum is as small, so outputs change only where they are that small themselves. Not set for
  // the whole thread: it is Node's (libuv's) thread, whose other code keeps IEEE behaviour.
  class FlushDenormals {
   public:
    FlushDenormals();
    ~FlushDenormals();
    FlushDenormals(const FlushDenormals&) = delete;
    FlushDenormals& operator=(const FlushDenormals&) = delete;

   private:
    unsigned saved_ = 0;
  };
  static unsigned fpControl();  // the calling thread's MXCSR control bits (0 where there is none)

  // While a Hold exists (one forward pass), a thread whose poll budget runs out keeps waiting with sched_yield
  // instead of sleeping, for up to kHeldWaitNs: a sleeping thread is woken by the other, and the kernel then often
  // places it on the waker's CPU, where the two share one core. Counted in slow calls after a pause: the worker
  // slept 5-6 times per forward, started 3-6 jobs on the caller's CPU and did 17-24 % of the chunks. The wait
  // ends early when a yield let another thread run for over kYieldBusyNs (the CPU is shared: sleep and leave it),
  // and is skipped when the system is oversubscribed. Measured (the first call after 0.5 s, 15 rounds, two runs):
  // median 17.0 / 19.8 ms with the other two changes only → 13.8 / 14.0 with Hold as well.
  class Hold {
   public:
    explicit Hold(ThreadPool* p) : p_(p) {
      if (p_) p_->held_.fetch_add(1, std::memory_order_relaxed);
    }
    ~Hold() {
      if (p_) p_->held_.fetch_sub(1, std::memory_order_relaxed);
    }
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;

   private:
    ThreadPool* p_;
  };

 private:
  // Waiting for a new job (workers) or for the workers to finish (caller): poll with `pause` for up to spin_ns_,
  // then sleep on a condition variable. The budget adapts: +kSpinStepNs after a wait that ended while polling,
  // halved after one that did not, between kSpinMinNs and kSpinMaxNs. Why: at batch 1 a forward pass is ~60
  // parallel_for calls, and one thread often finishes its share of a GEMM 10-50 µs before the other; with a fixed
  // 10 µs poll the waiting thread slept ~28 times per 12-token forward and each futex wake-up (of a vCPU that went
  // idle) cost more than the wait itself. When the machine has more runnable threads than cores, the thread we wait
  // for is often descheduled, polls time out, and the budget falls back to kSpinMinNs: long polls there take cores
  // from the threads doing the work (an earlier fixed ~0.5 ms poll: 12-token forward 137 → 198 ms at load average
  // 6). Measured (12-token batch-1 p50, 2 threads, 3 alternating runs): fixed 10 µs 13.1 / 14.0 / 12.9 ms, fixed
  // 50 µs 12.0 / 11.8 / 11.9, adaptive 11.9 / 12.1 / 11.7; two 2-thread models encoding concurrently on 2 cores
  // (oversubscribed): 79.6 / 79.5 / 77.2 sentences/s fixed 10 µs, 71.1 / 71.1 / 71.7 fixed 50 µs, 81.7 / 81.2
  // adaptive; with 4 busy loops beside (load average ~6) adaptive p50 52.0 / 51.8 / 43.3 ms vs fixed 10 µs 68.0 /
  // 65.1 / 42.9. Fixed 10 vs 50 µs (the adaptive range's ends, not the adaptive pool itself): bf16 / int8 batch-1
  // p50 and fp32 batch-32 throughput within noise; the bf16 / int8 batch-32 paths were not compared.
  static constexpr int64_t kSpinMinNs = 10000, kSpinMaxNs = 50000, kSpinStepNs = 5000;
  static constexpr int64_t kHeldWaitNs = 5000000, kYieldBusyNs = 50000;
  template <typename F>
  bool poll(F done);
  void worker(int tid);
  void runChunks(int tid);
  // Worker: move off the caller's CPU if the scheduler put it there, at most once per kMoveGapNs (threadpool.cpp).
  static constexpr int64_t kMoveGapNs = 2000000;
  void leaveCallerCpu();

  int n_ = 1;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable wake_cv_, done_cv_;
  std::atomic<uint64_t> gen_{0};
  std::atomic<bool> stop_{false};
  int sleepers_ = 0;  // workers waiting on wake_cv_ (guarded by mu_)
  const Fn* fn_ = nullptr;
  int64_t items_ = 0, grain_ = 1;
  unsigned fp_control_ = 0;  // the caller's fpControl() for the current job (published with work_, as fn_)
  std::atomic<uint64_t> work_{0};  // the current job's chunk count (high 32 bits) and next chunk (low 32)
  std::atomic<int64_t> done_{0};   // chunks of the current job finished
  std::atomic<int64_t> spin_ns_{kSpinMaxNs};
  std::atomic<int> caller_cpu_{-1};
  std::atomic<int> held_{0};  // live Holds  // the CPU the caller ran on when it published the current job
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
