#include "weights.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kst {

std::string shapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

namespace {

float halfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400) == 0);
      mant &= 0x3FF;
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | (mant << 13);
    }
  } else if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bf16ToFloat(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

WeightFile::WeightFile(const WeightsSource& src) : path_(src.path), specs_(src.tensors) {
  const std::string where = "weights file '" + path_ + "'";
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(where + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    throw Error(where + ": cannot stat: " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(where + ": not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      throw Error(where + ": mmap failed: " + std::strerror(e));
    }
    base_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping stays valid

  try {
    for (size_t i = 0; i < specs_.size(); ++i) {
      const TensorSpec& t = specs_[i];
      const std::string tw = "tensor '" + t.name + "' in " + path_;
      size_t esize;
      try {
        esize = dtypeSize(t.dtype);
      } catch (const Error&) {
        throw Error(tw + ": unknown dtype");
      }
      uint64_t count = 1;
      for (int64_t d : t.shape) {
        if (d < 0) throw Error(tw + ": negative dimension in shape " + shapeString(t.shape));
        if (d != 0 && count > (UINT64_MAX / 8) / static_cast<uint64_t>(d))
          throw Error(tw + ": shape " + shapeString(t.shape) + " overflows");
        count *= static_cast<uint64_t>(d);
      }
      if (count * esize != t.nbytes)
        throw Error(tw + ": nbytes " + std::to_string(t.nbytes) + " != " + std::to_string(count) + " elements × " +
                    std::to_string(esize) + " bytes (" + dtypeName(t.dtype) + " " + shapeString(t.shape) + ")");
      if (t.offset > size_ || t.nbytes > size_ - t.offset)
        throw Error(tw + ": data span [" + std::to_string(t.offset) + ", +" + std::to_string(t.nbytes) +
                    ") lies outside the file (" + std::to_string(size_) + " bytes)");
      if (!index_.emplace(t.name, i).second) throw Error(tw + ": duplicate tensor name");
    }
  } catch (...) {
    if (base_) ::munmap(const_cast<uint8_t*>(base_), size_);
    base_ = nullptr;
    throw;
  }
}

WeightFile::~WeightFile() {
  if (base_) ::munmap(const_cast<uint8_t*>(base_), size_);
}

const TensorSpec* WeightFile::find(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) it = index_.find("bert." + name);
  return it == index_.end() ? nullptr : &specs_[it->second];
}

const float* WeightFile::get(const std::string& name, const std::vector<int64_t>& shape) {
  const TensorSpec* t = find(name);
  if (!t) throw Error("tensor '" + name + "' in " + path_ + ": missing (expected shape " + shapeString(shape) + ")");
  if (t->shape != shape)
    throw Error("tensor '" + name + "' in " + path_ + ": expected shape " + shapeString(shape) + ", got " +
                shapeString(t->shape));
  const uint8_t* p = base_ ? base_ + t->offset : nullptr;
  const size_t count = t->nbytes / dtypeSize(t->dtype);
  if (t->dtype == DType::F32 && p && (reinterpret_cast<uintptr_t>(p) % 4) == 0)
    return reinterpret_cast<const float*>(p);
  auto it = converted_.find(t->name);
  if (it != converted_.end()) return it->second.get();
  std::unique_ptr<float[]> buf(new float[count ? count : 1]);
  if (t->dtype == DType::F32) {
    if (count) std::memcpy(buf.get(), p, count * 4);
  } else {
    for (size_t i = 0; i < count; ++i) {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      buf[i] = t->dtype == DType::F16 ? halfToFloat(h) : bf16ToFloat(h);
    }
  }
  const float* r = buf.get();
  converted_.emplace(t->name, std::move(buf));
  return r;
}

}  // namespace kst
