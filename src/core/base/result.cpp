#include "core/base/result.hpp"

namespace moat::core {

const char* to_string(ErrorSource source) {
  switch (source) {
    case ErrorSource::kInput: return "input";
    case ErrorSource::kConfig: return "config";
    case ErrorSource::kDownstream: return "downstream";
    case ErrorSource::kUpstream: return "upstream";
    case ErrorSource::kInternal: return "internal";
  }
  return "internal";
}

}  // namespace moat::core
