// YAML reading with bounds and located diagnostics (see yaml_reader.hpp).
#include "core/config/yaml_reader.hpp"

#include <algorithm>
#include <cctype>
#include <sstream>
#include <unordered_map>

#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>

#include "core/base/file.hpp"

namespace moat::core::config {
namespace {

// Pre-scan: counts nodes as if every alias were expanded, without expanding anything, and
// refuses more than one document. yaml-cpp itself caps nesting depth (DeepRecursion).
class BoundedScan : public YAML::EventHandler {
 public:
  struct TooLarge {
    YAML::Mark mark;
  };
  struct SecondDocument {
    YAML::Mark mark;
  };

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents_ > 1) throw SecondDocument{mark};
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override { leaf(mark, anchor); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = sizes_.find(anchor);
    add(mark, it == sizes_.end() ? 1 : it->second);
  }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                const std::string&) override {
    leaf(mark, anchor);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(mark, anchor);
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(mark, anchor);
  }
  void OnMapEnd() override { close(); }

 private:
  void add(const YAML::Mark& mark, std::uint64_t n) {
    expanded_ += n;
    if (expanded_ > kMaxExpandedNodes) throw TooLarge{mark};
  }
  void leaf(const YAML::Mark& mark, YAML::anchor_t anchor) {
    add(mark, 1);
    if (anchor != YAML::NullAnchor) sizes_[anchor] = 1;
  }
  void open(const YAML::Mark& mark, YAML::anchor_t anchor) {
    stack_.push_back({anchor, expanded_});
    add(mark, 1);
  }
  void close() {
    if (stack_.empty()) return;
    auto [anchor, start] = stack_.back();
    stack_.pop_back();
    if (anchor != YAML::NullAnchor) sizes_[anchor] = expanded_ - start;
  }

  int documents_ = 0;
  std::uint64_t expanded_ = 0;
  std::vector<std::pair<YAML::anchor_t, std::uint64_t>> stack_;
  std::unordered_map<YAML::anchor_t, std::uint64_t> sizes_;
};

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

bool is_identifier_impl(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  if (!std::isalnum(static_cast<unsigned char>(s.front()))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
  });
}

bool is_date_impl(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
  for (std::size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  int month = (s[5] - '0') * 10 + (s[6] - '0');
  int day = (s[8] - '0') * 10 + (s[9] - '0');
  return month >= 1 && month <= 12 && day >= 1 && day <= 31;
}

Diagnostic yaml_error(const std::string& file, const YAML::Mark& mark, std::string message) {
  Diagnostic d;
  d.where = {file, mark.is_null() ? 0 : mark.line + 1, mark.is_null() ? 0 : mark.column + 1};
  if (message.find("anchor") != std::string::npos || message.find("alias") != std::string::npos) {
    d.hint = "in YAML a value starting with '*' is an alias: quote such values, "
             "e.g. \"*.example.com\"";
  }
  d.message = "YAML syntax: " + std::move(message);
  return d;
}

bool by_position(const Diagnostic& a, const Diagnostic& b) {
  if (a.where.line != b.where.line) return a.where.line < b.where.line;
  return a.where.column < b.where.column;
}

}  // namespace

bool is_identifier(std::string_view s) { return is_identifier_impl(s); }
bool is_date(std::string_view s) { return is_date_impl(s); }

YamlDocument read_yaml_text(std::string_view text, const std::string& name) {
  YamlDocument doc;
  // yaml-cpp stops at a NUL byte; such a file is binary, not YAML.
  if (auto nul = text.find('\0'); nul != std::string_view::npos) {
    doc.diagnostics.push_back({Severity::kError, {name, 0, 0},
                               fmt::format("not a text file (NUL byte at offset {})", nul), {}});
    return doc;
  }
  std::string owned(text);
  try {
    std::istringstream scan_input(owned);
    YAML::Parser parser(scan_input);
    BoundedScan scan;
    while (parser.HandleNextDocument(scan)) {
    }
  } catch (const BoundedScan::TooLarge& e) {
    doc.diagnostics.push_back(yaml_error(
        name, e.mark, fmt::format("the document expands to more than {} nodes", kMaxExpandedNodes)));
    doc.diagnostics.back().hint = "anchors and aliases that expand without bound are refused";
    return doc;
  } catch (const BoundedScan::SecondDocument& e) {
    doc.diagnostics.push_back(
        yaml_error(name, e.mark, "more than one YAML document ('---'); one per file"));
    return doc;
  } catch (const YAML::Exception& e) {
    doc.diagnostics.push_back(yaml_error(name, e.mark, e.msg));
    return doc;
  }
  try {
    doc.root = YAML::Load(owned);
  } catch (const YAML::Exception& e) {
    doc.diagnostics.push_back(yaml_error(name, e.mark, e.msg));
  }
  return doc;
}

YamlDocument read_yaml_file(const std::string& path, std::size_t max_bytes) {
  auto text = read_file_capped(path, max_bytes);
  if (!text) {
    YamlDocument doc;
    doc.unreadable = true;
    std::string message = text.error().message;
    // The message already starts with the path; avoid "path: path: ...".
    if (message.rfind(path + ": ", 0) == 0) message.erase(0, path.size() + 2);
    doc.diagnostics.push_back({Severity::kError, {path, 0, 0}, std::move(message), {}});
    return doc;
  }
  if (text->find_first_not_of(" \t\r\n") == std::string::npos) {
    YamlDocument doc;
    doc.diagnostics.push_back({Severity::kError, {path, 0, 0}, "the file is empty", {}});
    return doc;
  }
  return read_yaml_text(*text, path);
}

std::vector<Diagnostic> YamlReader::take_diagnostics() {
  std::stable_sort(diagnostics_.begin(), diagnostics_.end(), by_position);
  return std::move(diagnostics_);
}

bool YamlReader::failed() const { return has_errors(diagnostics_); }

bool YamlReader::expect_list(const YAML::Node& node, std::string_view what) {
  if (node.IsSequence()) return true;
  error(at(node), fmt::format("{} must be a list", what));
  return false;
}

std::optional<std::chrono::milliseconds> YamlReader::duration(const YAML::Node& node,
                                                              std::string_view what) {
  std::string s = node.IsScalar() ? node.Scalar() : "";
  std::size_t digits = 0;
  while (digits < s.size() && std::isdigit(static_cast<unsigned char>(s[digits]))) ++digits;
  std::string unit = s.substr(digits);
  std::uint64_t scale = 0;
  if (unit.empty() || unit == "s") scale = 1000;
  else if (unit == "ms") scale = 1;
  else if (unit == "m") scale = 60'000;
  else if (unit == "h") scale = 3'600'000;
  if (digits == 0 || digits > 9 || scale == 0) {
    error(at(node), fmt::format("{} '{}' is not a duration", what, s),
          "write a whole number with a unit: 250ms, 10s, 5m, 1h");
    return std::nullopt;
  }
  return std::chrono::milliseconds(std::stoull(s.substr(0, digits)) * scale);
}

std::optional<std::uint64_t> YamlReader::size(const YAML::Node& node, std::string_view what) {
  std::string s = node.IsScalar() ? node.Scalar() : "";
  std::size_t digits = 0;
  while (digits < s.size() && std::isdigit(static_cast<unsigned char>(s[digits]))) ++digits;
  std::string unit = s.substr(digits);
  std::uint64_t scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "KiB") scale = 1024;
  else if (unit == "MiB") scale = 1024 * 1024;
  else if (unit == "GiB") scale = 1024ULL * 1024 * 1024;
  if (digits == 0 || digits > 12 || scale == 0) {
    error(at(node), fmt::format("{} '{}' is not a size", what, s),
          "write a whole number of bytes, or with KiB, MiB or GiB");
    return std::nullopt;
  }
  return std::stoull(s.substr(0, digits)) * scale;
}

Location YamlReader::at(const YAML::Node& node) const {
  YAML::Mark m = node.Mark();
  if (m.is_null()) return {file_, 0, 0};
  return {file_, m.line + 1, m.column + 1};
}
Location YamlReader::at_char(const YAML::Node& node, std::size_t offset) const {
  Location where = at(node);
  bool quoted = node.IsScalar() && node.Tag() == "!";
  if (where.line > 0) where.column += static_cast<int>(offset) + (quoted ? 1 : 0);
  return where;
}

void YamlReader::error(Location where, std::string message, std::string hint) {
  diagnostics_.push_back({Severity::kError, std::move(where), std::move(message), std::move(hint)});
}
void YamlReader::warning(Location where, std::string message, std::string hint) {
  diagnostics_.push_back(
      {Severity::kWarning, std::move(where), std::move(message), std::move(hint)});
}

bool YamlReader::expect_map(const YAML::Node& node, std::string_view what) {
  if (node.IsMap()) return true;
  error(at(node), fmt::format("{} must be a mapping (key: value lines)", what));
  return false;
}

void YamlReader::check_keys(const YAML::Node& map, std::initializer_list<std::string_view> allowed,
                std::string_view what) {
  for (const auto& kv : map) {
    if (!kv.first.IsScalar()) {
      error(at(kv.first), fmt::format("{}: keys must be plain words", what));
      continue;
    }
    const std::string& key = kv.first.Scalar();
    if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
    std::string_view best;
    std::size_t best_distance = 3;
    for (std::string_view candidate : allowed) {
      std::size_t d = edit_distance(key, candidate);
      if (d < best_distance) {
        best_distance = d;
        best = candidate;
      }
    }
    std::string list;
    for (std::string_view candidate : allowed) {
      if (!list.empty()) list += ", ";
      list += candidate;
    }
    error(at(kv.first), fmt::format("unknown key '{}' in {}", key, what),
          best.empty() ? fmt::format("allowed keys: {}", list)
                       : fmt::format("did you mean '{}'?", best));
  }
}

std::string YamlReader::string(const YAML::Node& map, const char* key, std::string_view what, bool required) {
  YAML::Node node = map[key];
  if (!node.IsDefined() || node.IsNull()) {
    if (required) error(at(map), fmt::format("{} is missing required key '{}'", what, key));
    return {};
  }
  if (!node.IsScalar()) {
    error(at(node), fmt::format("'{}' in {} must be a single value", key, what));
    return {};
  }
  if (required && node.Scalar().empty()) {
    error(at(node), fmt::format("'{}' in {} must not be empty", key, what));
  }
  return node.Scalar();
}

bool YamlReader::boolean(const YAML::Node& map, const char* key, std::string_view what, bool fallback) {
  YAML::Node node = map[key];
  if (!node.IsDefined() || node.IsNull()) return fallback;
  if (node.IsScalar() && node.Tag() != "!") {
    const std::string& s = node.Scalar();
    if (s == "true") return true;
    if (s == "false") return false;
  }
  error(at(node), fmt::format("'{}' in {} must be true or false", key, what));
  return fallback;
}

std::optional<std::uint64_t> YamlReader::number(const YAML::Node& node, std::string_view what,
                                    std::uint64_t max) {
  if (!node.IsScalar() || node.Tag() == "!" || node.Scalar().empty() ||
      !std::all_of(node.Scalar().begin(), node.Scalar().end(),
                   [](char c) { return c >= '0' && c <= '9'; }) ||
      node.Scalar().size() > 19) {
    error(at(node), fmt::format("{} must be a whole number", what));
    return std::nullopt;
  }
  std::uint64_t v = std::stoull(node.Scalar());
  if (v > max) {
    error(at(node), fmt::format("{} must be at most {}", what, max));
    return std::nullopt;
  }
  return v;
}

std::vector<std::string> YamlReader::string_list(const YAML::Node& map, const char* key,
                                     std::string_view what) {
  std::vector<std::string> out;
  YAML::Node node = map[key];
  if (!node.IsDefined() || node.IsNull()) return out;
  if (node.IsScalar()) return {node.Scalar()};
  if (!node.IsSequence()) {
    error(at(node), fmt::format("'{}' in {} must be a list", key, what));
    return out;
  }
  for (const auto& item : node) {
    if (!item.IsScalar()) {
      error(at(item), fmt::format("items of '{}' in {} must be single values", key, what));
      continue;
    }
    out.push_back(item.Scalar());
  }
  return out;
}


}  // namespace moat::core::config
