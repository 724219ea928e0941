#include <string>

#include "memory_pool.cuh"

namespace kst {
namespace cuda {

DeviceArena::~DeviceArena() {
  if (base_) cudaFree(base_);
}

void DeviceArena::reserve(size_t bytes) {
  if (base_) throw CudaError("DeviceArena::reserve called twice", false);
  KST_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&base_), bytes ? bytes : kAlign));
  cap_ = bytes;
  used_ = 0;
}

void* DeviceArena::allocBytes(size_t bytes) {
  const size_t need = alignUp(bytes);
  if (!base_ || used_ + need > cap_)
    throw CudaError("DeviceArena: out of reserved space (" + std::to_string(used_ + need) + " > " +
                        std::to_string(cap_) + " bytes)",
                    false);
  void* p = base_ + used_;
  used_ += need;
  return p;
}

Workspace::~Workspace() {
  if (base_) cudaFree(base_);
}

bool Workspace::ensure(size_t bytes, cudaStream_t stream) {
  if (bytes <= cap_ && base_) return false;
  size_t want = cap_ + cap_ / 2;
  if (want < bytes) want = bytes;
  want = alignUp(want);
  if (base_) {
    KST_CUDA_CHECK(cudaStreamSynchronize(stream));
    KST_CUDA_CHECK(cudaFree(base_));
    base_ = nullptr;
    cap_ = 0;
  }
  KST_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&base_), want));
  cap_ = want;
  ++gen_;
  return true;
}

PinnedBuffer::~PinnedBuffer() {
  if (p_) cudaFreeHost(p_);
}

void PinnedBuffer::ensure(size_t bytes, cudaStream_t stream) {
  if (bytes <= cap_ && p_) return;
  size_t want = cap_ + cap_ / 2;
  if (want < bytes) want = bytes;
  want = alignUp(want);
  if (p_) {
    KST_CUDA_CHECK(cudaStreamSynchronize(stream));
    KST_CUDA_CHECK(cudaFreeHost(p_));
    p_ = nullptr;
    cap_ = 0;
  }
  KST_CUDA_CHECK(cudaMallocHost(&p_, want));
  cap_ = want;
}

}  // namespace cuda
}  // namespace kst
