// Device memory of one model, allocated in few large pieces and sub-allocated (never cudaMalloc per tensor
// or per call):
//   DeviceArena  the weights: one allocation sized at load, bump-allocated, 256-byte aligned pieces;
//   Workspace    the activations of one encode call: grows geometrically (never shrinks) and reports a new
//                generation whenever it moves, so captured CUDA graphs that point into it are dropped;
//   PinnedBuffer page-locked host staging for the per-call inputs and outputs (asynchronous copies).
#pragma once

#include <cstddef>
#include <cstdint>

#include "common.cuh"

namespace kst {
namespace cuda {

constexpr size_t kAlign = 256;
inline size_t alignUp(size_t n) { return (n + kAlign - 1) & ~(kAlign - 1); }

class DeviceArena {
 public:
  DeviceArena() = default;
  ~DeviceArena();
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;
  void reserve(size_t bytes);  // once, before any alloc
  void* allocBytes(size_t bytes);
  template <typename T>
  T* alloc(size_t count) {
    return static_cast<T*>(allocBytes(count * sizeof(T)));
  }
  size_t used() const { return used_; }
  size_t capacity() const { return cap_; }

 private:
  char* base_ = nullptr;
  size_t cap_ = 0, used_ = 0;
};

class Workspace {
 public:
  Workspace() = default;
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  // At least `bytes` (grows to max(bytes, 1.5 × current)); waits for `stream` before freeing the old block.
  // Returns true when the block moved.
  bool ensure(size_t bytes, cudaStream_t stream);
  char* base() const { return base_; }
  size_t capacity() const { return cap_; }
  uint64_t generation() const { return gen_; }

 private:
  char* base_ = nullptr;
  size_t cap_ = 0;
  uint64_t gen_ = 0;
};

class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer();
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void ensure(size_t bytes, cudaStream_t stream);
  void* data() const { return p_; }

 private:
  void* p_ = nullptr;
  size_t cap_ = 0;
};

// Carves consecutive 256-byte aligned pieces out of a base pointer (or just sums their sizes when base is null).
class Carver {
 public:
  explicit Carver(char* base) : base_(base) {}
  template <typename T>
  T* take(size_t count) {
    T* p = base_ ? reinterpret_cast<T*>(base_ + off_) : nullptr;
    off_ += alignUp(count * sizeof(T));
    return p;
  }
  size_t size() const { return off_; }

 private:
  char* base_;
  size_t off_ = 0;
};

}  // namespace cuda
}  // namespace kst
