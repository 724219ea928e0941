// The attention driver shared by attention_avx2.cpp and attention_avx512.cpp: one task per (sequence, head)
// over the thread pool, each thread's scratch slice, and the transpose of the head's K into scratch
// (Kt[c][j], rows padded with zeros to a multiple of LANES) so scores come LANES keys at a time. The ISA file
// supplies the rest of a task (scores, softmax, p·V) as `body`, and may supply its own transpose as `packK`.
//
// Include this file ONLY inside an anonymous namespace in kst::cpu, after simd.h (as gemm_driver.h):
// everything here then has internal linkage, so each ISA file gets its own copy compiled with its own flags
// and the linker cannot merge the AVX-512 copy with the AVX2 one (see ops.h). Hence no #include and no
// include guard here.

struct AttnJob {
  const AttnArgs* a;
  float* scratch;
  size_t per_thread;
};

// One (sequence, head) task: the sequence's L tokens start at token t0; kt is Kt (HS × Lp), p the scratch
// after it (score rows of Lp floats).
struct AttnTask {
  int h, L, Lp;
  int64_t t0;
  float* kt;
  float* p;
};

using AttnBody = void (*)(const AttnArgs& a, const AttnTask& t);
// Fills t.kt: Kt[c][j] = K[t0 + j][h·HS + c] for j < L, 0 for L ≤ j < Lp.
using AttnPackK = void (*)(const AttnArgs& a, const AttnTask& t);

// The plain transpose (the AVX2 file's; attention_avx512.cpp has a register-transpose one).
inline void attnPackKScalar(const AttnArgs& a, const AttnTask& t) {
  const int HS = a.head_size;
  for (int j = 0; j < t.L; ++j) {
    const float* k = a.k + (t.t0 + j) * a.ld_qkv + t.h * HS;
    for (int c = 0; c < HS; ++c) t.kt[static_cast<size_t>(c) * t.Lp + j] = k[c];
  }
  for (int c = 0; c < HS; ++c)
    for (int j = t.L; j < t.Lp; ++j) t.kt[static_cast<size_t>(c) * t.Lp + j] = 0.f;
}

template <int LANES, AttnBody body, AttnPackK packK>
void attnRange(void* ctx, int64_t tb, int64_t te, int tid) {
  const AttnJob& J = *static_cast<const AttnJob*>(ctx);
  const AttnArgs& a = *J.a;
  const int HS = a.head_size;
  float* const base = J.scratch + J.per_thread * tid;
  for (int64_t task = tb; task < te; ++task) {
    const int s = static_cast<int>(task / a.heads);
    AttnTask t;
    t.h = static_cast<int>(task % a.heads);
    t.L = a.lengths[s];
    t.Lp = (t.L + LANES - 1) & ~(LANES - 1);
    t.t0 = a.offsets[s];
    t.kt = base;                                      // HS × Lp
    t.p = base + static_cast<size_t>(HS) * t.Lp;   // score rows
    packK(a, t);
    body(a, t);
  }
}

template <int LANES, AttnBody body, AttnPackK packK = attnPackKScalar>
void attnRun(const AttnArgs& a, float* scratch, ThreadPool* pool) {
  AttnJob j{&a, scratch, attentionScratchPerThread(a.max_len, a.head_size)};
  parallelRun(pool, static_cast<int64_t>(a.batch) * a.heads, 1, attnRange<LANES, body, packK>, &j);
}
