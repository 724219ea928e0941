#include "threadpool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

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
// True when the system has more runnable threads right now than CPUs (the running count in /proc/loadavg, which
// includes the asking thread): a thread then shares its CPU whatever it does, and moving or yield-waiting only
// adds work (with 4 busy loops beside a 2-thread model on 2 cores, moving on collisions regardless made the
// 12-token p50 45.7 / 48.3 → 53.8 / 52.2 ms). Read at most once per ms per thread; false where the file cannot be
// read.
bool systemOversubscribed() {
#ifdef __linux__
  static thread_local int64_t checked = -1000000000;
  static thread_local bool over = false;
  const int64_t t = nowNs();
  if (t - checked < 1000000) return over;
  checked = t;
  over = false;
  const int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return over;
  char buf[128];
  const ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return over;
  buf[n] = 0;
  const char* p = buf;  // "0.52 0.58 0.59 2/345 1234": the 4th field's numerator
  for (int field = 0; field < 3 && *p; ++p)
    if (*p == ' ') ++field;
  long running = 0;
  while (*p >= '0' && *p <= '9') running = running * 10 + (*p++ - '0');
  static const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  over = *p == '/' && cpus > 0 && running > cpus;
#endif
  return over;
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
  if (ok || held_.load(std::memory_order_relaxed) == 0 || systemOversubscribed()) return ok;
  // Held (Hold, threadpool.h): wait on with sched_yield rather than sleep, unless a yield let another thread run
  // for a while (this CPU is shared with other work: sleep and leave it to them).
  const int64_t t0 = nowNs();
  for (int64_t t = t0; held_.load(std::memory_order_relaxed) > 0 && t - t0 < kHeldWaitNs;) {
    if (done()) return true;
    sched_yield();
    const int64_t t1 = nowNs();
    if (t1 - t > kYieldBusyNs) break;
    t = t1;
  }
  return done();
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_.store(true);
  }
  wake_cv_.notify_all();
  for (auto& th : threads_) th.join();
}

#if defined(__x86_64__) || defined(__i386__)
// MXCSR: bits 0-5 are sticky exception flags, the rest control (bit 6 DAZ: subnormal inputs read as 0; bits 13-14
// rounding; bit 15 FTZ: subnormal results written as 0). Only the control bits are handed on and restored.
constexpr unsigned kCsrFlags = 0x3Fu, kCsrFtzDaz = 0x8040u;
unsigned ThreadPool::fpControl() { return _mm_getcsr() & ~kCsrFlags; }
static void setFpControl(unsigned control) {
  const unsigned csr = _mm_getcsr();
  if ((csr & ~kCsrFlags) != control) _mm_setcsr((csr & kCsrFlags) | control);
}
ThreadPool::FlushDenormals::FlushDenormals() : saved_(fpControl()) { setFpControl(saved_ | kCsrFtzDaz); }
ThreadPool::FlushDenormals::~FlushDenormals() { setFpControl(saved_); }
#else
unsigned ThreadPool::fpControl() { return 0; }
static void setFpControl(unsigned) {}
ThreadPool::FlushDenormals::FlushDenormals() {}
ThreadPool::FlushDenormals::~FlushDenormals() {}
#endif

// Claims chunks of the current job until none is left. A claim is one fetch_add on work_ (chunk count in the high
// 32 bits, next chunk in the low 32): a value whose next is below its count is a chunk of the job published in that
// word, and that job cannot end (nor fn_ / items_ / grain_ change) before the chunk is done, so the fields read
// after the claim are that job's. A claim past the end changes nothing the job needs (the caller rewrites work_
// for the next job), so a worker that wakes late takes nothing and is not waited for.
void ThreadPool::runChunks(int tid) {
  for (;;) {
    const uint64_t w = work_.fetch_add(1, std::memory_order_acq_rel);
    const uint64_t chunks = w >> 32, c = w & 0xffffffffu;
    if (c >= chunks) return;
    const int64_t b = static_cast<int64_t>(c) * grain_;
    if (tid != 0) setFpControl(fp_control_);
    (*fn_)(b, std::min(b + grain_, items_), tid);
    if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == static_cast<int64_t>(chunks) && tid != 0) {
      std::lock_guard<std::mutex> lk(mu_);  // pairs with the caller's predicate check under mu_
      done_cv_.notify_one();
    }
  }
}

// A worker that starts a job on the CPU its caller is running on moves itself off it: the two would share one core
// for as long as the scheduler leaves them there, and the job runs at one thread's speed. In Node the caller is
// whichever libuv thread took the call, woken on the CPU it last ran on, often the one this worker last ran on.
// Counted with the previous pool (12-token forward, 2 threads, 2 vCPUs): the worker started on the caller's CPU in
// 28 % of its jobs in the calls after a 0.5 s pause, 2.3 % back to back, 3 % after a pause in a C++ loop with one
// caller thread. The move narrows the affinity mask to exclude that CPU, which makes the kernel migrate this thread
// at once, then restores the mask (which does not move it back): no thread stays pinned, so several models' pools
// and other processes still share the cores. No move when the system is oversubscribed (sharing a CPU is then
// unavoidable), and at most one per kMoveGapNs per worker.
void ThreadPool::leaveCallerCpu() {
#ifdef __linux__
  const int here = sched_getcpu(), caller = caller_cpu_.load(std::memory_order_relaxed);
  if (here < 0 || here != caller) return;
  static thread_local int64_t last_move = 0;
  const int64_t t = nowNs();
  if (t - last_move < kMoveGapNs || systemOversubscribed()) return;
  last_move = t;
  cpu_set_t all, others;
  if (sched_getaffinity(0, sizeof(all), &all) != 0 || CPU_COUNT(&all) < n_ || !CPU_ISSET(here, &all)) return;
  others = all;
  CPU_CLR(here, &others);
  if (sched_setaffinity(0, sizeof(others), &others) == 0) sched_setaffinity(0, sizeof(all), &all);
#endif
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
    leaveCallerCpu();
    runChunks(tid);
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const Fn& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  if (n_ <= 1 || n <= grain) {
    fn(0, n, 0);
    return;
  }
  // The caller waits for the job's chunks, not for the workers: a worker that is asleep (counted in slow calls on
  // the 2-vCPU VM: a job that had to wake it started ~0.3 ms after it was published, at worst 0.9 ms) helps when it
  // gets there or not at all. Before, the caller waited for every worker
  // to check in; after a pause the workers slept, waits timed out, the adaptive poll budget fell to its floor, and
  // each parallel_for became a sleep and two wake-ups. With this alone (12-token forward, 2 threads, 12 pauses of
  // 0.5 s each followed by 5 calls) the mean of the 60 calls went 16.9 / 18.6 → 14.0 / 14.9 ms; with leaveCallerCpu
  // and Hold as well, threadpool.h has the figures.
  constexpr int64_t kMaxChunks = int64_t(1) << 31;  // leaves the low half of work_ room for claims past the end
  if ((n + grain - 1) / grain > kMaxChunks) grain = (n + kMaxChunks - 1) / kMaxChunks;
  const int64_t nchunks = (n + grain - 1) / grain;
  fn_ = &fn;
#ifdef __linux__
  caller_cpu_.store(sched_getcpu(), std::memory_order_relaxed);
#endif
  items_ = n;
  grain_ = grain;
  fp_control_ = fpControl();
  done_.store(0, std::memory_order_relaxed);
  work_.store(static_cast<uint64_t>(nchunks) << 32, std::memory_order_release);  // publishes fn_, items_, grain_
  bool wake;
  {
    std::lock_guard<std::mutex> lk(mu_);
    gen_.fetch_add(1, std::memory_order_release);
    wake = sleepers_ > 0;
  }
  if (wake) wake_cv_.notify_all();
  runChunks(0);
  if (!poll([&] { return done_.load(std::memory_order_acquire) == nchunks; })) {
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [&] { return done_.load(std::memory_order_acquire) == nchunks; });
  }
  fn_ = nullptr;
}

}  // namespace kst
