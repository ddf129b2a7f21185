#include "edge/health.hpp"

#include <chrono>
#include <string>

#include <fmt/format.h>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "core/http/response_head.hpp"
#include "core/runtime/process.hpp"
#include "edge/balancer.hpp"

namespace moat::edge {

namespace {

using asio::use_awaitable;

enum class CheckResult { kOk, kBadStatus, kConnectFailed, kTimeout, kBadResponse };

const char* result_name(CheckResult r) {
  switch (r) {
    case CheckResult::kOk:
      return "ok";
    case CheckResult::kBadStatus:
      return "bad_status";
    case CheckResult::kConnectFailed:
      return "connect_failed";
    case CheckResult::kTimeout:
      return "timeout";
    case CheckResult::kBadResponse:
      return "bad_response";
  }
  return "bad_response";
}

struct Check {
  CheckResult result = CheckResult::kOk;
  std::string detail;
};

// One check: connect, `GET path`, read the response head, all within `timeout`. The deadline
// closes the socket, which ends whichever operation is waiting.
asio::awaitable<Check> check_once(const Member& member, const HealthCheck& hc) {
  auto executor = co_await asio::this_coro::executor;
  auto socket = std::make_shared<asio::ip::tcp::socket>(executor);
  auto timed_out = std::make_shared<bool>(false);
  asio::steady_timer deadline(executor, hc.timeout);
  deadline.async_wait([socket, timed_out](const asio::error_code& ec) {
    if (ec) return;
    *timed_out = true;
    asio::error_code ignored;
    socket->close(ignored);
  });
  auto failed = [&](CheckResult r, std::string detail) {
    deadline.cancel();
    asio::error_code ignored;
    socket->close(ignored);
    if (*timed_out)
      return Check{CheckResult::kTimeout,
                   fmt::format("no answer within {} ms", hc.timeout.count())};
    return Check{r, std::move(detail)};
  };

  asio::error_code ec;
  asio::ip::tcp::endpoint endpoint(core::runtime::to_asio(member.address), member.port);
  co_await socket->async_connect(endpoint, asio::redirect_error(use_awaitable, ec));
  if (ec || *timed_out) co_return failed(CheckResult::kConnectFailed, "connect: " + ec.message());
  const std::string request = fmt::format(
      "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: moat-health-check\r\nAccept: */*\r\n"
      "Connection: close\r\n\r\n",
      hc.path, hc.host.empty() ? member.text : hc.host);
  co_await asio::async_write(*socket, asio::buffer(request),
                             asio::redirect_error(use_awaitable, ec));
  if (ec || *timed_out) co_return failed(CheckResult::kBadResponse, "write: " + ec.message());

  core::http::ResponseHeadParser head;
  char buffer[4096];
  for (;;) {
    std::size_t n = co_await socket->async_read_some(asio::buffer(buffer),
                                                     asio::redirect_error(use_awaitable, ec));
    if (*timed_out) co_return failed(CheckResult::kTimeout, {});
    if (ec || n == 0) {
      co_return failed(CheckResult::kBadResponse, "closed without a response head");
    }
    auto status = head.feed(std::string_view(buffer, n));
    if (status == core::http::ParseStatus::kError) {
      co_return failed(CheckResult::kBadResponse,
                       "invalid response head: " + std::string(head.error().message));
    }
    if (status == core::http::ParseStatus::kComplete) break;
  }
  deadline.cancel();
  socket->close(ec);
  if (!hc.expected(head.status_code())) {
    co_return Check{CheckResult::kBadStatus, fmt::format("status {}", head.status_code())};
  }
  co_return Check{CheckResult::kOk, {}};
}

}  // namespace

struct HealthChecker::Loop {
  static asio::awaitable<void> run(HealthChecker* self, std::shared_ptr<const EdgeConfig> config,
                                   std::size_t pool_index, std::size_t member_index,
                                   std::uint64_t generation) {
    const Pool& pool = config->pools[pool_index];
    const Member& member = pool.members[member_index];
    MemberState& state = *pool.state->members[member_index];
    const HealthCheck& hc = pool.health;
    core::obs::GaugeHandle up_gauge = self->up_->labels({pool.name, member.text});
    core::obs::CounterHandle counts[5];
    for (CheckResult r : {CheckResult::kOk, CheckResult::kBadStatus, CheckResult::kConnectFailed,
                          CheckResult::kTimeout, CheckResult::kBadResponse}) {
      counts[static_cast<int>(r)] = self->checks_->labels({pool.name, member.text, result_name(r)});
    }
    bool up = state.up();
    up_gauge.set(self->shard_, up ? 1 : 0);
    std::uint32_t successes = 0;
    std::uint32_t failures = 0;
    asio::steady_timer timer(co_await asio::this_coro::executor);
    while (generation == self->generation_) {
      const auto started = std::chrono::steady_clock::now();
      Check check = co_await check_once(member, hc);
      if (generation != self->generation_) break;  // a reload or stop came meanwhile
      counts[static_cast<int>(check.result)].inc(self->shard_);
      if (check.result == CheckResult::kOk) {
        failures = 0;
        if (!up && ++successes >= hc.rise) {
          up = true;
          state.set_up(true);
          up_gauge.set(self->shard_, 1);
          log_member_event("upstream_up", pool.name, member.text,
                           fmt::format("{} consecutive checks passed", successes));
        }
      } else {
        successes = 0;
        if (up && ++failures >= hc.fall) {
          up = false;
          state.set_up(false);
          up_gauge.set(self->shard_, 0);
          log_member_event("upstream_down", pool.name, member.text,
                           fmt::format("{} consecutive checks failed, last: {}{}{}", failures,
                                       result_name(check.result), check.detail.empty() ? "" : ": ",
                                       check.detail));
        }
      }
      timer.expires_at(started + hc.interval);
      asio::error_code ec;
      co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
    }
  }
};

HealthChecker::HealthChecker(asio::io_context& context, core::obs::MetricsRegistry& metrics,
                             std::size_t shard)
    : context_(context), metrics_(metrics), shard_(shard) {
  up_ = &metrics_.gauge_family("moat_edge_upstream_up",
                               "1 if the upstream member is up by its active health checks (or "
                               "has none), 0 if down",
                               {"pool", "member"});
  checks_ =
      &metrics_.counter_family("moat_edge_health_checks_total", "Active health checks by result",
                               {"pool", "member", "result"});
}

HealthChecker::~HealthChecker() = default;

void HealthChecker::start(std::shared_ptr<const EdgeConfig> config) {
  asio::post(context_, [this, config = std::move(config)] {
    ++generation_;
    for (std::size_t p = 0; p < config->pools.size(); ++p) {
      const Pool& pool = config->pools[p];
      if (!pool.state) continue;
      for (std::size_t m = 0; m < pool.members.size(); ++m) {
        if (pool.health.enabled) {
          asio::co_spawn(context_, Loop::run(this, config, p, m, generation_), asio::detached);
        } else {
          // No active checks (or no longer): the member is up; a reload that removed the checks
          // must not leave it down forever.
          pool.state->members[m]->set_up(true);
          up_->labels({pool.name, pool.members[m].text}).set(shard_, 1);
        }
      }
    }
  });
}

void HealthChecker::stop() {
  asio::post(context_, [this] { ++generation_; });
}

}  // namespace moat::edge
