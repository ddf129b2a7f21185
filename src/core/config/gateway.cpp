#include "core/config/gateway.hpp"

#include <fmt/format.h>

namespace moat::core::config {

YAML::Node read_gateway_root(YamlReader& reader, const YAML::Node& root, std::string_view section,
                             GatewaySettings& out) {
  if (!root.IsDefined() || root.IsNull() || !root.IsMap()) {
    reader.error({reader.file(), 1, 1}, "a gateway config must be a YAML mapping",
                 fmt::format("it starts with 'moat: gateway/v1' and an '{}:' section", section));
    return YAML::Node(YAML::NodeType::Undefined);
  }
  reader.check_keys(root, {"moat", "workers", "admin", "egress", "edge"}, "the gateway config");
  YAML::Node schema = root["moat"];
  if (!schema.IsDefined() || !schema.IsScalar() || schema.Scalar() != "gateway/v1") {
    reader.error(schema.IsDefined() ? reader.at(schema) : Location{reader.file(), 1, 1},
                 "expected 'moat: gateway/v1' (the schema this file follows)");
  }
  if (YAML::Node w = root["workers"]; YamlReader::present(w)) {
    if (auto v = reader.number(w, "workers", 256)) out.workers = *v;
  }
  if (YAML::Node a = root["admin"]; YamlReader::present(a) && reader.expect_map(a, "admin")) {
    reader.check_keys(a, {"listen"}, "admin");
    out.admin_listen = reader.string(a, "listen", "admin", false);
  }
  YAML::Node node = root[std::string(section)];
  if (!YamlReader::present(node)) {
    reader.error({reader.file(), 1, 1}, fmt::format("this config has no '{}:' section", section));
    return YAML::Node(YAML::NodeType::Undefined);
  }
  if (!reader.expect_map(node, section)) return YAML::Node(YAML::NodeType::Undefined);
  return node;
}

}  // namespace moat::core::config
