// A cache of large CPU buffers for the fused ops' outputs and saved tensors.
//
// Each training step allocates the same large tensors (hidden activations,
// cosines, gradients) and frees them after backward. glibc hands such blocks
// back to the OS, so every step pays page faults and page zeroing again.
// pooled_empty() keeps freed blocks (exact-size reuse, thread-safe) up to a
// byte cap: STRAINER_FAST_CPU_CACHE_MB (default 1024; 0 disables the cache).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace strainer_fast::cpu {

// Uninitialised tensor like at::empty; blocks of at least 128 KiB come from the cache.
at::Tensor pooled_empty(at::IntArrayRef sizes, const at::TensorOptions& options);

// Bytes held by the cache (free blocks only), and releasing them to the OS.
int64_t cached_bytes();
void empty_cache();

}  // namespace strainer_fast::cpu
