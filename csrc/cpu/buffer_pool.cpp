#include "buffer_pool.h"

#include <cstdlib>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace strainer_fast::cpu {
namespace {

constexpr size_t kMinPooledBytes = size_t{128} << 10;
constexpr size_t kAlignment = 64;

class BufferPool {
 public:
  BufferPool() {
    const char* env = std::getenv("STRAINER_FAST_CPU_CACHE_MB");
    int64_t mb = 1024;
    if (env != nullptr && *env != '\0') {
      char* end = nullptr;
      const long long v = std::strtoll(env, &end, 10);
      if (end != env && *end == '\0' && v >= 0) mb = v;
    }
    cap_ = static_cast<size_t>(mb) << 20;
  }

  void* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(bytes);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        held_ -= bytes;
        return p;
      }
    }
    void* p = std::aligned_alloc(kAlignment, bytes);
    TORCH_CHECK(p != nullptr, "strainer_fast: out of memory allocating ", bytes, " bytes");
    return p;
  }

  void give(void* p, size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (held_ + bytes <= cap_) {
        free_[bytes].push_back(p);
        held_ += bytes;
        return;
      }
    }
    std::free(p);
  }

  size_t held() {
    std::lock_guard<std::mutex> lock(mu_);
    return held_;
  }

  void clear() {
    std::unordered_map<size_t, std::vector<void*>> old;
    {
      std::lock_guard<std::mutex> lock(mu_);
      old.swap(free_);
      held_ = 0;
    }
    for (auto& [bytes, blocks] : old) {
      for (void* p : blocks) std::free(p);
    }
  }

 private:
  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t held_ = 0;
  size_t cap_ = 0;
};

// Never destroyed: tensors may be freed after static destructors have run.
BufferPool& pool() {
  static auto* p = new BufferPool();
  return *p;
}

size_t round_up(size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

}  // namespace

at::Tensor pooled_empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
  const int64_t numel = c10::multiply_integers(sizes);
  const size_t bytes = round_up(static_cast<size_t>(numel) * options.dtype().itemsize());
  if (bytes < kMinPooledBytes) return at::empty(sizes, options);
  void* p = pool().take(bytes);
  return at::from_blob(p, sizes, [bytes](void* q) { pool().give(q, bytes); }, options);
}

int64_t cached_bytes() { return static_cast<int64_t>(pool().held()); }

void empty_cache() { pool().clear(); }

}  // namespace strainer_fast::cpu
