#include "graph.cuh"

namespace kst {
namespace cuda {

void GraphCache::clear() {
  for (Entry& e : lru_) cudaGraphExecDestroy(e.exec);
  lru_.clear();
  map_.clear();
  seen_.clear();
}

void GraphCache::run(const GraphKey& key, cudaStream_t stream, const std::function<void(cudaStream_t)>& record) {
  if (!enabled_) {
    record(stream);
    return;
  }
  auto it = map_.find(key);
  if (it != map_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    KST_CUDA_CHECK(cudaGraphLaunch(it->second->exec, stream));
    ++launches_;
    return;
  }
  if (seen_.insert(key).second) {  // first sighting: eager
    if (seen_.size() > 4096) seen_.clear();
    record(stream);
    return;
  }
  // Second sighting: capture. Kernel launches inside `record` are only recorded, not run.
  KST_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  try {
    record(stream);
  } catch (...) {
    cudaGraph_t g = nullptr;
    cudaStreamEndCapture(stream, &g);
    if (g) cudaGraphDestroy(g);
    cudaGetLastError();  // the capture's own error state, if any
    throw;
  }
  cudaGraph_t graph = nullptr;
  const cudaError_t ec = cudaStreamEndCapture(stream, &graph);
  cudaGraphExec_t exec = nullptr;
  cudaError_t ei = cudaErrorUnknown;
  if (ec == cudaSuccess && graph) ei = cudaGraphInstantiateWithFlags(&exec, graph, 0);
  if (graph) cudaGraphDestroy(graph);
  if (ec != cudaSuccess || ei != cudaSuccess) {
    // Capture is not available here: run eagerly from now on.
    cudaGetLastError();
    enabled_ = false;
    clear();
    record(stream);
    return;
  }
  ++captures_;
  lru_.push_front(Entry{key, exec});
  map_[key] = lru_.begin();
  if (lru_.size() > capacity_) {
    cudaGraphExecDestroy(lru_.back().exec);
    map_.erase(lru_.back().key);
    lru_.pop_back();
  }
  KST_CUDA_CHECK(cudaGraphLaunch(exec, stream));
  ++launches_;
}

}  // namespace cuda
}  // namespace kst
