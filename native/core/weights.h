// A weights file memory-mapped read-only for the life of the model. Every TensorSpec is checked
// against the file (span inside it without overflow, byte count matching shape × dtype) at open.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "kst.h"

namespace kst {

std::string shapeString(const std::vector<int64_t>& shape);

class WeightFile {
 public:
  explicit WeightFile(const WeightsSource& src);
  ~WeightFile();
  WeightFile(const WeightFile&) = delete;
  WeightFile& operator=(const WeightFile&) = delete;

  const std::string& path() const { return path_; }
  // Looks up `name`, then "bert." + name. Null if absent.
  const TensorSpec* find(const std::string& name) const;
  // F32 data of the tensor, checked against `shape`: used in place when F32 and 4-byte aligned,
  // otherwise converted / copied once and kept. Throws kst::Error naming the tensor and file.
  const float* get(const std::string& name, const std::vector<int64_t>& shape);

 private:
  std::string path_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  std::vector<TensorSpec> specs_;
  std::unordered_map<std::string, size_t> index_;
  std::unordered_map<std::string, std::unique_ptr<float[]>> converted_;
};

}  // namespace kst
