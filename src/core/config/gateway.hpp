// core/config: the top level of a gateway config (`moat: gateway/v1`), shared by the modes: one
// file may carry an `egress:` and an `edge:` section next to the process-wide settings.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/config/yaml_reader.hpp"

namespace moat::core::config {

struct GatewaySettings {
  std::size_t workers = 0;   // 0 = one per core
  std::string admin_listen;  // "" = no admin listener
};

// Checks the top level and reads the shared settings; returns the mode's section (`section`),
// or an undefined node after reporting why there is none.
YAML::Node read_gateway_root(YamlReader& reader, const YAML::Node& root, std::string_view section,
                             GatewaySettings& out);

}  // namespace moat::core::config
