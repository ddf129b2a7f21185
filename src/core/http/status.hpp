// core/http: the reason phrases of the statuses moat answers itself (RFC 9110 15).
#pragma once

#include <string_view>

namespace moat::core::http {

// "Bad Request" for 400, ...; "Error" for a status moat never sends on its own.
std::string_view reason_phrase(int status);

}  // namespace moat::core::http
