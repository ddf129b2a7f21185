// core/base: hex and base64 (RFC 4648) encoding, strict decoding.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace moat::core {

std::string to_hex(std::span<const std::uint8_t> bytes);  // lowercase, no separators
std::string base64_encode(std::span<const std::uint8_t> bytes);

// Strict: standard alphabet, padding required, no whitespace, canonical trailing bits.
std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view text);
// Hex digits, optionally separated by ':' between byte pairs; case-insensitive.
std::optional<std::vector<std::uint8_t>> hex_decode(std::string_view text);

}  // namespace moat::core
