#include "core/runtime/deadline_wheel.hpp"

#include <chrono>
#include <memory>
#include <vector>

#include <asio/io_context.hpp>
#include <gtest/gtest.h>

namespace moat::core::runtime {
namespace {

using namespace std::chrono_literals;
using Clock = Deadline::Clock;

struct Counter {
  int fired = 0;
  static void on(void* self) { ++static_cast<Counter*>(self)->fired; }
};

TEST(DeadlineWheel, FiresOnlyWhatHasExpired) {
  asio::io_context io;
  DeadlineWheel wheel(io.get_executor());
  Counter a, b, c;
  Deadline da(wheel, &Counter::on, &a), db(wheel, &Counter::on, &b), dc(wheel, &Counter::on, &c);
  auto t0 = Clock::now();
  da.arm_at(t0 + 1s);
  db.arm_at(t0 + 5s);
  // dc never armed.
  EXPECT_EQ(wheel.expire(t0 + 500ms), 0u);
  EXPECT_EQ(wheel.expire(t0 + 1s), 1u);
  EXPECT_EQ(a.fired, 1);
  EXPECT_FALSE(da.armed());
  EXPECT_EQ(wheel.expire(t0 + 2s), 0u);  // fired once, then disarmed
  db.disarm();
  EXPECT_EQ(wheel.expire(t0 + 10s), 0u);
  EXPECT_EQ(b.fired + c.fired, 0);
  EXPECT_EQ(wheel.size(), 3u);
}

TEST(DeadlineWheel, ReArmingMovesTheDeadline) {
  asio::io_context io;
  DeadlineWheel wheel(io.get_executor());
  Counter a;
  Deadline d(wheel, &Counter::on, &a);
  auto t0 = Clock::now();
  d.arm_at(t0 + 1s);
  d.arm_at(t0 + 3s);  // a request arrived: the idle limit starts again
  EXPECT_EQ(wheel.expire(t0 + 2s), 0u);
  EXPECT_EQ(wheel.expire(t0 + 3s), 1u);
}

// A callback that destroys its own entry and the next one (a session ending on its deadline and
// taking a sibling down) must not derail the scan.
TEST(DeadlineWheel, CallbackMayDestroyEntries) {
  asio::io_context io;
  DeadlineWheel wheel(io.get_executor());
  struct Owner {
    std::vector<std::unique_ptr<Deadline>>* all;
    int fired = 0;
  };
  std::vector<std::unique_ptr<Deadline>> all;
  Owner owner{&all};
  auto kill_all = [](void* p) {
    auto* o = static_cast<Owner*>(p);
    ++o->fired;
    o->all->clear();
  };
  for (int i = 0; i < 5; ++i) all.push_back(std::make_unique<Deadline>(wheel, kill_all, &owner));
  auto t0 = Clock::now();
  for (auto& d : all) d->arm_at(t0);
  EXPECT_EQ(wheel.expire(t0 + 1ms), 1u);
  EXPECT_EQ(owner.fired, 1);
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(DeadlineWheel, TicksOnTheIoContextAndStopsWhenNothingIsArmed) {
  asio::io_context io;
  DeadlineWheel wheel(io.get_executor(), 10ms);
  Counter a;
  Deadline d(wheel, &Counter::on, &a);
  auto start = Clock::now();
  d.arm(30ms);
  // run() returns once the wheel stops ticking: after the deadline fired and nothing is armed.
  io.run_for(5s);
  auto took = Clock::now() - start;
  EXPECT_EQ(a.fired, 1);
  EXPECT_GE(took, 30ms);
  EXPECT_LT(took, 2s);
}


TEST(DeadlineWheel, EntriesOutlivingTheWheelAreDetached) {
  auto io = std::make_unique<asio::io_context>();
  auto wheel = std::make_unique<DeadlineWheel>(io->get_executor());
  Counter a;
  auto d = std::make_unique<Deadline>(*wheel, &Counter::on, &a);
  wheel.reset();
  d->arm(1s);  // harmless: no wheel to tick it
  d.reset();   // must not touch the destroyed wheel (ASan would say so)
  EXPECT_EQ(a.fired, 0);
}

}  // namespace
}  // namespace moat::core::runtime
