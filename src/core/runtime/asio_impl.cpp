// Asio is compiled once here (ASIO_SEPARATE_COMPILATION, set on moat_core_runtime for every
// user), instead of in every translation unit that includes it.
//
// A standard header first, as in every other file: Asio picks std::aligned_alloc or operator
// new for its recycled memory depending on what is already included, and its inline allocate
// and free functions must agree across files (else memory from one is freed by the other).
#include <cstddef>

#include <asio/impl/src.hpp>
#include <asio/ssl/impl/src.hpp>
