// What the fuzz targets share: an invariant check that crashes where libFuzzer can see it, and
// a byte comparison for "parsed twice, same result" checks.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>

namespace moat::fuzz {

// A broken invariant is a crash (libFuzzer keeps the input), in every build type.
inline void check(bool condition) {
  if (!condition) __builtin_trap();
}

inline bool same_bytes(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

}  // namespace moat::fuzz
