// core/config: reading YAML configuration safely and with located errors. A bounded pre-scan
// (size cap, one document, alias expansion cap, yaml-cpp's depth cap), then YamlReader helpers
// that check a schema and collect every problem with file:line:column instead of stopping.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "core/config/diagnostic.hpp"

namespace moat::core::config {

struct YamlDocument {
  YAML::Node root;
  std::vector<Diagnostic> diagnostics;  // non-empty means the document could not be read
  bool unreadable = false;              // the file itself could not be read (missing, dir, ...)
  bool ok() const { return diagnostics.empty(); }
};

// A config is a page of a few hundred nodes; anything near this is a "billion laughs".
inline constexpr std::uint64_t kMaxExpandedNodes = 200'000;

YamlDocument read_yaml_text(std::string_view text, const std::string& name);
YamlDocument read_yaml_file(const std::string& path, std::size_t max_bytes);

class YamlReader {
 public:
  explicit YamlReader(std::string file) : file_(std::move(file)) {}

  const std::string& file() const { return file_; }
  std::vector<Diagnostic> take_diagnostics();  // sorted by position
  bool failed() const;

  // Where a node starts (for a quoted scalar: its opening quote).
  Location at(const YAML::Node& node) const;
  // Where byte `offset` of a scalar's value is (skipping the opening quote of a quoted scalar).
  Location at_char(const YAML::Node& node, std::size_t offset) const;

  void error(Location where, std::string message, std::string hint = {});
  void warning(Location where, std::string message, std::string hint = {});

  bool expect_map(const YAML::Node& node, std::string_view what);
  bool expect_list(const YAML::Node& node, std::string_view what);
  // Reports keys of `map` not in `allowed`, with "did you mean" or the list of allowed keys.
  void check_keys(const YAML::Node& map, std::initializer_list<std::string_view> allowed,
                  std::string_view what);

  static bool present(const YAML::Node& node) { return node.IsDefined() && !node.IsNull(); }
  static bool quoted(const YAML::Node& node) { return node.IsScalar() && node.Tag() == "!"; }

  // Scalar string; a missing required key is reported at the enclosing map.
  std::string string(const YAML::Node& map, const char* key, std::string_view what, bool required);
  bool boolean(const YAML::Node& map, const char* key, std::string_view what, bool fallback);
  // Unsigned integer written as a plain number (no quotes, sign or exponent), at most `max`.
  std::optional<std::uint64_t> number(const YAML::Node& node, std::string_view what,
                                      std::uint64_t max);
  // A single value or a list of values.
  std::vector<std::string> string_list(const YAML::Node& map, const char* key,
                                       std::string_view what);
  // "250ms", "10s", "5m", "1h" or a plain number of seconds.
  std::optional<std::chrono::milliseconds> duration(const YAML::Node& node, std::string_view what);
  // "64KiB", "1MiB", "512" (bytes).
  std::optional<std::uint64_t> size(const YAML::Node& node, std::string_view what);

 private:
  std::string file_;
  std::vector<Diagnostic> diagnostics_;
};

// Runs a schema walk (`reader.document(root, out)`); a YAML::Exception from a node of a shape the
// walk did not expect becomes a located error instead of escaping: never a crash.
template <typename Reader, typename Out>
void walk_document(Reader& reader, const YAML::Node& root, Out& out) {
  try {
    reader.document(root, out);
  } catch (const YAML::Exception& e) {
    reader.error({reader.file(), e.mark.line + 1, e.mark.column + 1}, e.msg);
  }
}

// True for [a-z0-9][a-z0-9-_.]{0,63}: ids used in logs and metrics.
bool is_identifier(std::string_view s);
bool is_date(std::string_view s);  // YYYY-MM-DD

}  // namespace moat::core::config
