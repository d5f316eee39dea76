// SF_ISA_CLONES: compile a function once per x86 ISA level (AVX-512, AVX2+FMA,
// baseline) and pick the best at load time (GCC target_clones).
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SF_ISA_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SF_ISA_CLONES
#endif
