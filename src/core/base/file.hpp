// core/base: reading whole input files with a size cap and precise errors.
#pragma once

#include <cstddef>
#include <string>

#include "core/base/result.hpp"

namespace moat::core {

// Reads `path` fully. Errors (as values, source kInput): missing, a directory or other non-regular
// file, unreadable, larger than `max_bytes` (checked before reading, so a 100 MB file costs nothing).
Result<std::string> read_file_capped(const std::string& path, std::size_t max_bytes);

}  // namespace moat::core
