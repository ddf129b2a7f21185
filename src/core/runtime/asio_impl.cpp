// Asio is compiled once here (ASIO_SEPARATE_COMPILATION, set on moat_core_runtime for every
// user), instead of in every translation unit that includes it.
#include <asio/impl/src.hpp>
#include <asio/ssl/impl/src.hpp>
