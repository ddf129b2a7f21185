#include "core/obs/audit_log.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/obs/json_line.hpp"

namespace moat::core::obs {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "moat-obs-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  fs::path operator/(const char* name) const { return path_ / name; }

 private:
  fs::path path_;
};

std::vector<std::string> read_lines(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// A record like the egress one, with a variable-length attacker-controlled field.
std::string_view make_record(JsonLine& line, int thread, int seq) {
  line.clear()
      .add("thread", thread)
      .add("seq", seq)
      .add("host", std::string(static_cast<std::size_t>(seq % 97), 'h') + "\"\n\xFF")
      .add("decision", "allow");
  return line.view();
}

// Checks every line parses and that each (thread, seq) appears exactly once; returns the count.
std::size_t check_records(const std::vector<fs::path>& files, int threads, int per_thread) {
  std::set<std::pair<int, int>> seen;
  std::size_t count = 0;
  for (const auto& file : files) {
    for (const auto& text : read_lines(file)) {
      ++count;
      nlohmann::json record;
      EXPECT_NO_THROW(record = nlohmann::json::parse(text)) << text.substr(0, 80);
      if (!record.is_object()) continue;
      const int t = record["thread"].get<int>();
      const int s = record["seq"].get<int>();
      EXPECT_EQ(record["host"].get<std::string>().size(), static_cast<std::size_t>(s % 97) + 5);
      EXPECT_TRUE(seen.emplace(t, s).second) << "duplicate " << t << "/" << s;
    }
  }
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(threads * per_thread));
  return count;
}

TEST(AuditLog, ConcurrentWritersNeverInterleave) {
  constexpr int kThreads = 4;
  constexpr int kRecords = 10'000;
  TempDir dir;
  auto log = AuditLog::open((dir / "audit.log").string());
  ASSERT_TRUE(log.ok()) << log.error().message;
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      JsonLine line;  // one per worker, reused
      for (int i = 0; i < kRecords; ++i) EXPECT_TRUE((*log)->write(make_record(line, t, i)));
    });
  }
  for (auto& w : writers) w.join();
  EXPECT_EQ(check_records({dir / "audit.log"}, kThreads, kRecords), 40'000u);
  EXPECT_EQ((*log)->stats().write_errors, 0u);
  EXPECT_EQ((*log)->stats().short_writes, 0u);
}

TEST(AuditLog, ReopenAfterRenameLosesAndTearsNothing) {
  constexpr int kThreads = 4;
  constexpr int kRecords = 10'000;
  TempDir dir;
  const fs::path current = dir / "audit.log";
  const fs::path rotated = dir / "audit.log.1";
  auto opened = AuditLog::open(current.string());
  ASSERT_TRUE(opened.ok());
  AuditLog& log = **opened;

  std::atomic<int> written{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      JsonLine line;
      for (int i = 0; i < kRecords; ++i) {
        EXPECT_TRUE(log.write(make_record(line, t, i)));
        written.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  // Rotate while the writers are busy, as logrotate would: rename, then signal.
  while (written.load() < kThreads * kRecords / 4) std::this_thread::yield();
  fs::rename(current, rotated);
  ASSERT_TRUE(log.reopen().ok());
  const int after_reopen = written.load();
  for (auto& w : writers) w.join();
  ASSERT_TRUE(log.write(R"({"marker":true})"));

  EXPECT_EQ(log.stats().reopens, 1u);
  const auto fresh = read_lines(current);
  ASSERT_FALSE(fresh.empty());
  EXPECT_EQ(fresh.back(), R"({"marker":true})");
  if (after_reopen + kThreads < kThreads * kRecords) {
    // Records started after reopen() returned went to the new file (at most one in-flight record
    // per writer may still have gone to the old one).
    EXPECT_GT(fresh.size(), 1u);
  }
  EXPECT_FALSE(read_lines(rotated).empty());
  // All records, split across both files, each intact and exactly once (+ the marker).
  std::vector<std::string> without_marker = fresh;
  without_marker.pop_back();
  {
    std::ofstream out(dir / "fresh-records", std::ios::binary);
    for (const auto& l : without_marker) out << l << '\n';
  }
  EXPECT_EQ(check_records({rotated, dir / "fresh-records"}, kThreads, kRecords),
            static_cast<std::size_t>(kThreads * kRecords));
}

TEST(AuditLog, RefusesEmbeddedNewlines) {
  TempDir dir;
  auto log = AuditLog::open((dir / "a.log").string());
  ASSERT_TRUE(log.ok());
  EXPECT_FALSE((*log)->write("{\"a\":1}\n{\"forged\":true}"));
  EXPECT_EQ((*log)->stats().rejected, 1u);
  EXPECT_TRUE((*log)->write("{\"a\":1}"));
  EXPECT_EQ(read_lines(dir / "a.log"), std::vector<std::string>{"{\"a\":1}"});
}

TEST(AuditLog, CountsWriteErrors) {
  // /dev/full accepts open(2) but every write(2) fails with ENOSPC.
  ASSERT_TRUE(fs::exists("/dev/full")) << "Linux always has /dev/full";
  auto log = AuditLog::open("/dev/full");
  ASSERT_TRUE(log.ok());
  EXPECT_FALSE((*log)->write("{}"));
  EXPECT_FALSE((*log)->write("{}"));
  EXPECT_EQ((*log)->stats().write_errors, 2u);
}

TEST(AuditLog, OpenAndReopenFailuresAreValues) {
  TempDir dir;
  auto missing = AuditLog::open((dir / "no-such-dir/audit.log").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, "audit_log_open");
  EXPECT_FALSE(AuditLog::open("").ok());

  const fs::path sub = dir / "sub";
  fs::create_directory(sub);
  auto log = AuditLog::open((sub / "audit.log").string());
  ASSERT_TRUE(log.ok());
  fs::remove_all(sub);  // the directory is gone: reopen fails, the old file stays in use
  auto reopened = (*log)->reopen();
  EXPECT_FALSE(reopened.ok());
  EXPECT_EQ((*log)->stats().reopen_errors, 1u);
  EXPECT_TRUE((*log)->write("{}"));  // still writable (to the unlinked file)
}

TEST(AuditLog, StdoutIsNeverReopened) {
  for (const char* name : {"-", "stdout"}) {
    auto log = AuditLog::open(name);
    ASSERT_TRUE(log.ok());
    EXPECT_TRUE((*log)->is_stdout());
    EXPECT_TRUE((*log)->reopen().ok());
    EXPECT_EQ((*log)->stats().reopens, 0u);
  }
}

}  // namespace
}  // namespace moat::core::obs
