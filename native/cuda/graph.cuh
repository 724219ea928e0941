// CUDA graphs for repeated shapes: batch-1 requests are a hundred small kernels, so their cost is launch
// overhead; a captured graph launches them all with one call. A shape (batch, tokens, longest sequence,
// pooling, normalize, workspace layout) runs eagerly the first time it is seen; the second time it is
// captured, instantiated and launched, and from then on replayed. Least-recently-used graphs are dropped
// beyond `capacity`. If capture fails (an old driver, a forbidden call) graphs are switched off for good
// and the model keeps running eagerly.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <unordered_map>
#include <unordered_set>

#include "common.cuh"

namespace kst {
namespace cuda {

struct GraphKey {
  int64_t batch = 0, tokens = 0, max_len = 0;
  uint32_t pooling = 0;
  int normalize = 0;
  uint64_t layout = 0;
  bool operator==(const GraphKey& o) const {
    return batch == o.batch && tokens == o.tokens && max_len == o.max_len && pooling == o.pooling &&
           normalize == o.normalize && layout == o.layout;
  }
};
struct GraphKeyHash {
  size_t operator()(const GraphKey& k) const {
    uint64_t h = 1469598103934665603ull;
    for (uint64_t v : {static_cast<uint64_t>(k.batch), static_cast<uint64_t>(k.tokens),
                       static_cast<uint64_t>(k.max_len), static_cast<uint64_t>(k.pooling),
                       static_cast<uint64_t>(k.normalize), k.layout})
      h = (h ^ v) * 1099511628211ull;
    return static_cast<size_t>(h);
  }
};

class GraphCache {
 public:
  explicit GraphCache(bool enabled, size_t capacity = 64) : enabled_(enabled), capacity_(capacity) {}
  ~GraphCache() { clear(); }
  GraphCache(const GraphCache&) = delete;
  GraphCache& operator=(const GraphCache&) = delete;

  // Enqueues the work `record` enqueues on `stream`, eagerly or as a graph (see above).
  void run(const GraphKey& key, cudaStream_t stream, const std::function<void(cudaStream_t)>& record);
  void clear();
  bool enabled() const { return enabled_; }
  uint64_t launches() const { return launches_; }
  uint64_t captures() const { return captures_; }

 private:
  struct Entry {
    GraphKey key;
    cudaGraphExec_t exec;
  };
  bool enabled_;
  size_t capacity_;
  std::list<Entry> lru_;  // front = most recently used
  std::unordered_map<GraphKey, std::list<Entry>::iterator, GraphKeyHash> map_;
  std::unordered_set<GraphKey, GraphKeyHash> seen_;
  uint64_t launches_ = 0, captures_ = 0;
};

}  // namespace cuda
}  // namespace kst
