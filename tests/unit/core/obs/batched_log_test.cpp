#include "core/obs/batched_log.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <asio/io_context.hpp>
#include <gtest/gtest.h>

namespace moat::core::obs {
namespace {

using namespace std::chrono_literals;

class BatchedLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/moat-batched-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    path_ = std::string(dir) + "/access.log";
    auto log = AuditLog::open(path_);
    ASSERT_TRUE(log.ok());
    log_ = std::move(*log);
  }
  std::string contents() const {
    std::ifstream f(path_);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }
  std::string path_;
  std::unique_ptr<AuditLog> log_;
};

TEST_F(BatchedLogTest, HoldsRecordsUntilFullThenWritesWholeLines) {
  asio::io_context io;
  runtime::DeadlineWheel wheel(io.get_executor());
  BatchedLog batch(wheel, 32, 10s);
  batch.set_target(log_.get());
  EXPECT_TRUE(batch.add(R"({"n":1})"));
  EXPECT_TRUE(batch.add(R"({"n":2})"));
  EXPECT_EQ(contents(), "");  // buffered
  EXPECT_TRUE(batch.add(R"({"n":3,"pad":"xxxxxxxxx"})"));  // does not fit: the first two go out
  EXPECT_EQ(contents(), "{\"n\":1}\n{\"n\":2}\n");
  batch.flush();
  EXPECT_EQ(contents(), "{\"n\":1}\n{\"n\":2}\n{\"n\":3,\"pad\":\"xxxxxxxxx\"}\n");
}

TEST_F(BatchedLogTest, ARecordLargerThanTheBufferKeepsItsPlace) {
  asio::io_context io;
  runtime::DeadlineWheel wheel(io.get_executor());
  BatchedLog batch(wheel, 16, 10s);
  batch.set_target(log_.get());
  batch.add("{}");
  batch.add(R"({"big":"0123456789abcdef"})");
  EXPECT_EQ(contents(), "{}\n{\"big\":\"0123456789abcdef\"}\n");
}

TEST_F(BatchedLogTest, FlushesAfterTheDelayOnTheWorkersLoop) {
  asio::io_context io;
  runtime::DeadlineWheel wheel(io.get_executor(), 10ms);
  BatchedLog batch(wheel, 64 * 1024, 50ms);
  batch.set_target(log_.get());
  batch.add(R"({"n":1})");
  io.run_for(5s);  // returns when the wheel has nothing armed: after the flush
  EXPECT_EQ(contents(), "{\"n\":1}\n");
  EXPECT_EQ(batch.buffered(), 0u);
}

TEST_F(BatchedLogTest, RejectsANewlineInsideARecordAndFlushesOnDestruction) {
  asio::io_context io;
  runtime::DeadlineWheel wheel(io.get_executor());
  {
    BatchedLog batch(wheel, 1024, 10s);
    batch.set_target(log_.get());
    EXPECT_FALSE(batch.add("{\"a\":1}\n{\"b\":2}"));
    EXPECT_EQ(log_->stats().rejected, 1u);
    batch.add(R"({"ok":true})");
  }
  EXPECT_EQ(contents(), "{\"ok\":true}\n");
}

TEST_F(BatchedLogTest, CapacityZeroWritesEachRecordAtOnce) {
  asio::io_context io;
  runtime::DeadlineWheel wheel(io.get_executor());
  BatchedLog batch(wheel, 0);
  batch.set_target(log_.get());
  batch.add("{}");
  EXPECT_EQ(contents(), "{}\n");
}

}  // namespace
}  // namespace moat::core::obs
