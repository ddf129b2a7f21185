#include "core/dns/resolver.hpp"

#include <sys/random.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <utility>

#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/detached.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <fmt/format.h>

#include "core/base/file.hpp"

namespace moat::core::net {
namespace {

using std::chrono::duration_cast;
using std::chrono::microseconds;
using std::chrono::seconds;

constexpr std::size_t kMaxNameservers = 3;            // glibc MAXNS
constexpr std::size_t kMaxConfigFileBytes = 1 << 20;  // resolv.conf and hosts
// We advertise kEdnsUdpPayloadSize; a larger datagram is cut by the kernel, fails to parse and
// is ignored like any other invalid response.
constexpr std::size_t kUdpBufferSize = 4096;
constexpr std::size_t kRandomPoolSize = 256;

constexpr auto kAwait = asio::use_awaitable;

std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r') ++i;
    if (i > start) fields.push_back(line.substr(start, i - start));
  }
  return fields;
}

template <typename F>
void for_each_line(std::string_view text, F&& f) {
  while (!text.empty()) {
    auto nl = text.find('\n');
    f(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
}

std::optional<int> parse_small_int(std::string_view text) {
  if (text.empty() || text.size() > 4) return std::nullopt;
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

std::string endpoint_text(const asio::ip::udp::endpoint& e) {
  return e.address().is_v6() ? fmt::format("[{}]:{}", e.address().to_string(), e.port())
                             : fmt::format("{}:{}", e.address().to_string(), e.port());
}

bool has_addresses(const Result<dns::DnsAnswer>& r) {
  return r.ok() && r->rcode == dns::Rcode::kNoError && !r->addresses.empty();
}

bool is_rcode(const Result<dns::DnsAnswer>& r, dns::Rcode rcode) {
  return r.ok() && r->rcode == rcode;
}

}  // namespace

// ---- configuration ----------------------------------------------------------------------------

Result<ResolverConfig> parse_resolv_conf(std::string_view text, std::string_view origin) {
  ResolverConfig config;
  std::size_t line_number = 0;
  std::optional<Error> failure;
  for_each_line(text, [&](std::string_view line) {
    ++line_number;
    if (failure) return;
    auto fields = split_fields(line);
    if (fields.empty() || fields[0].front() == '#' || fields[0].front() == ';') return;
    if (fields[0] == "nameserver" && fields.size() >= 2) {
      if (config.nameservers.size() == kMaxNameservers) return;  // glibc ignores the rest
      asio::error_code ec;
      auto address = asio::ip::make_address(std::string(fields[1]), ec);
      if (ec) {
        failure = Error::config("resolv_conf_bad_nameserver",
                                fmt::format("{}:{}: '{}' is not an IP address", origin,
                                            line_number, fields[1]));
        return;
      }
      config.nameservers.emplace_back(address, 53);
    } else if (fields[0] == "options") {
      for (std::size_t i = 1; i < fields.size(); ++i) {
        auto option = fields[i];
        if (option.starts_with("timeout:")) {
          if (auto v = parse_small_int(option.substr(8))) {
            config.timeout = seconds(std::clamp(*v, 1, 30));
          }
        } else if (option.starts_with("attempts:")) {
          if (auto v = parse_small_int(option.substr(9))) config.attempts = std::clamp(*v, 1, 5);
        }
      }
    }
  });
  if (failure) return *failure;
  if (config.nameservers.empty()) {
    return Error::config("resolv_conf_no_nameserver",
                         fmt::format("{}: no nameserver line", origin))
        .with_hint("list a DNS server as 'nameserver ADDRESS'");
  }
  return config;
}

Result<ResolverConfig> system_resolver_config(const std::string& resolv_conf) {
  auto text = read_file_capped(resolv_conf, kMaxConfigFileBytes);
  if (!text) return text.error();
  return parse_resolv_conf(*text, resolv_conf);
}

std::map<std::string, std::vector<IpAddress>> parse_hosts(std::string_view text) {
  std::map<std::string, std::vector<IpAddress>> hosts;
  for_each_line(text, [&](std::string_view line) {
    line = line.substr(0, line.find('#'));
    auto fields = split_fields(line);
    if (fields.size() < 2) return;
    auto address = parse_ip_strict(fields[0]);
    if (!address) return;
    for (std::size_t i = 1; i < fields.size(); ++i) {
      auto name = dns::normalize_query_name(fields[i]);
      if (!name) continue;
      auto& list = hosts[*name];
      if (std::find(list.begin(), list.end(), *address) == list.end()) list.push_back(*address);
    }
  });
  return hosts;
}

const char* to_string(Resolution::Source source) {
  switch (source) {
    case Resolution::Source::kOverride: return "override";
    case Resolution::Source::kHosts: return "hosts";
    case Resolution::Source::kCache: return "cache";
    case Resolution::Source::kDns: return "dns";
  }
  return "?";
}

// ---- resolver ---------------------------------------------------------------------------------

// A DNS lookup in flight; later callers for the same name wait on `done` (cancelled, never
// expiring) until `result` is set.
struct Resolver::InFlight {
  explicit InFlight(const asio::any_io_executor& executor)
      : done(executor, Clock::time_point::max()) {}
  asio::steady_timer done;
  std::optional<Result<Resolution>> result;
};

// The AAAA query runs beside the A query and leaves its result here.
struct Resolver::FamilyResult {
  explicit FamilyResult(const asio::any_io_executor& executor)
      : done(executor, Clock::time_point::max()) {}
  asio::steady_timer done;
  std::optional<Result<dns::DnsAnswer>> result;
};

Resolver::Resolver(asio::io_context& context, ResolverConfig config)
    : executor_(context.get_executor()), config_(std::move(config)) {
  // Keys are meant to be normalized already; normalize again so "Example.COM." still matches.
  std::map<std::string, std::vector<IpAddress>> overrides;
  for (auto& [host, addresses] : config_.overrides) {
    auto name = dns::normalize_query_name(host);
    overrides[name ? *name : host] = addresses;
  }
  config_.overrides = std::move(overrides);
  if (!config_.hosts_file.empty()) {
    auto text = read_file_capped(config_.hosts_file, kMaxConfigFileBytes);
    if (text) {
      hosts_ = parse_hosts(*text);
    } else {
      hosts_error_ = text.error();
    }
  }
}

Resolver::~Resolver() = default;

asio::awaitable<Result<Resolution>> Resolver::resolve(std::string host) {
  const auto start = Clock::now();
  auto finish = [&](Result<Resolution> r) {
    if (r) r->latency = duration_cast<microseconds>(Clock::now() - start);
    return r;
  };
  ++counters_.lookups;
  auto normalized = dns::normalize_query_name(host);
  if (!normalized) co_return normalized.error();
  const std::string& name = *normalized;

  if (auto it = config_.overrides.find(name); it != config_.overrides.end()) {
    ++counters_.static_hits;
    co_return finish(Resolution{it->second, Resolution::Source::kOverride, seconds(0), {}});
  }
  if (auto it = hosts_.find(name); it != hosts_.end()) {
    ++counters_.static_hits;
    co_return finish(Resolution{it->second, Resolution::Source::kHosts, seconds(0), {}});
  }
  if (auto cached = cache_lookup(name)) {
    ++counters_.cache_hits;
    co_return finish(std::move(*cached));
  }
  ++counters_.cache_misses;

  if (auto it = in_flight_->find(name); it != in_flight_->end()) {
    ++counters_.coalesced;
    std::shared_ptr<InFlight> flight = it->second;
    while (!flight->result) {
      asio::error_code ec;
      co_await flight->done.async_wait(asio::redirect_error(kAwait, ec));
    }
    co_return finish(*flight->result);
  }

  auto flight = std::make_shared<InFlight>(executor_);
  in_flight_->emplace(name, flight);
  // Publishes the result (or an error, if this frame is destroyed mid-lookup) and wakes waiters.
  struct Publish {
    std::shared_ptr<InFlightMap> map;
    std::shared_ptr<InFlight> flight;
    std::string name;
    ~Publish() {
      if (!flight->result) {
        flight->result.emplace(Error::internal("dns_lookup_aborted", "the lookup was abandoned"));
      }
      auto it = map->find(name);
      if (it != map->end() && it->second == flight) map->erase(it);
      flight->done.cancel();
    }
  } publish{in_flight_, flight, name};
  auto result = co_await lookup(name);
  flight->result.emplace(result);
  co_return finish(std::move(result));
}

asio::awaitable<Result<Resolution>> Resolver::lookup(std::string name) {
  if (config_.nameservers.empty()) {
    co_return Error::config("dns_no_nameservers", "no DNS server is configured");
  }
  // A and AAAA at the same time: the AAAA query runs as its own coroutine.
  auto aaaa = std::make_shared<FamilyResult>(executor_);
  asio::co_spawn(executor_, query_into(aaaa, name, dns::QueryType::kAaaa), asio::detached);
  const Result<dns::DnsAnswer> a = co_await query(name, dns::QueryType::kA);
  while (!aaaa->result) {
    asio::error_code ec;
    co_await aaaa->done.async_wait(asio::redirect_error(kAwait, ec));
  }
  const Result<dns::DnsAnswer>& b = *aaaa->result;

  if (has_addresses(a) || has_addresses(b)) {
    Resolution resolution;
    std::uint32_t ttl = UINT32_MAX;
    for (const auto* r : {&a, &b}) {
      if (!has_addresses(*r)) continue;
      resolution.addresses.insert(resolution.addresses.end(), (*r)->addresses.begin(),
                                  (*r)->addresses.end());
      ttl = std::min(ttl, (*r)->ttl);
    }
    resolution.ttl = clamp_ttl(seconds(ttl), config_.max_ttl);
    resolution.source = Resolution::Source::kDns;
    cache_store(name, CacheEntry{resolution.addresses, std::nullopt, {}, {}}, resolution.ttl);
    co_return resolution;
  }

  // Negative answers (RFC 2308): NXDOMAIN for either family means the name does not exist;
  // NOERROR without addresses for both is NODATA. Both are cached; failures are not.
  auto negative_ttl = [&](std::initializer_list<const Result<dns::DnsAnswer>*> answers) {
    std::optional<std::uint32_t> soa;
    for (const auto* r : answers) {
      if (r->ok() && (*r)->negative_ttl) {
        soa = soa ? std::min(*soa, *(*r)->negative_ttl) : *(*r)->negative_ttl;
      }
    }
    return soa ? clamp_ttl(seconds(*soa), config_.negative_ttl) : config_.min_ttl;
  };
  for (const auto* r : {&a, &b}) {
    if (!is_rcode(*r, dns::Rcode::kNxDomain)) continue;
    Error error = Error::upstream("dns_nxdomain", fmt::format("'{}' does not exist", name));
    cache_store(name, CacheEntry{{}, error, {}, {}}, negative_ttl({r}));
    co_return error;
  }
  if (is_rcode(a, dns::Rcode::kNoError) && is_rcode(b, dns::Rcode::kNoError)) {
    Error error = Error::upstream("dns_no_addresses",
                                  fmt::format("'{}' has no A or AAAA records", name));
    cache_store(name, CacheEntry{{}, error, {}, {}}, negative_ttl({&a, &b}));
    co_return error;
  }
  co_return a.ok() ? b.error() : a.error();
}

asio::awaitable<void> Resolver::query_into(std::shared_ptr<FamilyResult> out, std::string name,
                                           dns::QueryType type) {
  out->result.emplace(co_await query(std::move(name), type));
  out->done.cancel();
}

asio::awaitable<Result<dns::DnsAnswer>> Resolver::query(std::string name, dns::QueryType type) {
  std::optional<Error> last_error;
  // A server that refused (or does not implement) the query is not asked again.
  std::vector<bool> skip(config_.nameservers.size(), false);
  for (int attempt = 0; attempt < std::max(1, config_.attempts); ++attempt) {
    bool worth_retrying = false;
    for (std::size_t i = 0; i < config_.nameservers.size(); ++i) {
      if (skip[i]) continue;
      const auto& server = config_.nameservers[i];
      auto answer = co_await udp_attempt(server, name, type);
      if (!answer) {
        last_error = answer.error();
        worth_retrying = worth_retrying || answer.error().retryable;
        continue;
      }
      if (answer->truncated) {
        // RFC 7766 / RFC 1035 4.2.1: retry the same server over TCP. Without it, a truncated
        // answer's complete records are still valid, so they are used when there are any.
        ++counters_.tcp_queries;
        auto full = co_await tcp_attempt(server, name, type);
        if (full && !full->truncated) {
          answer = std::move(full);
        } else if (answer->rcode == dns::Rcode::kNoError && answer->addresses.empty()) {
          last_error = Error::upstream(
              "dns_truncated",
              fmt::format("{} {}: truncated answer and the TCP retry failed{}", name,
                          dns::to_string(type), full ? "" : ": " + full.error().message),
              true);
          worth_retrying = true;
          continue;
        }
      }
      switch (answer->rcode) {
        case dns::Rcode::kNoError:
        case dns::Rcode::kNxDomain:
          co_return answer;
        case dns::Rcode::kServFail:
          last_error = Error::upstream(
              "dns_servfail", fmt::format("{} answered SERVFAIL for {} {}", endpoint_text(server),
                                          name, dns::to_string(type)),
              true);
          worth_retrying = true;
          break;
        case dns::Rcode::kRefused:
          last_error = Error::upstream(
              "dns_refused", fmt::format("{} REFUSED the query for {} {}", endpoint_text(server),
                                         name, dns::to_string(type)));
          skip[i] = true;
          break;
        default:
          last_error = Error::upstream(
              "dns_bad_rcode",
              fmt::format("{} answered RCODE {} for {} {}", endpoint_text(server),
                          static_cast<int>(answer->rcode), name, dns::to_string(type)));
          skip[i] = true;
          break;
      }
    }
    if (!worth_retrying) break;
  }
  co_return last_error ? *last_error
                       : Error::internal("dns_no_nameservers", "no DNS server is configured");
}

asio::awaitable<Result<dns::DnsAnswer>> Resolver::udp_attempt(asio::ip::udp::endpoint server,
                                                              std::string name,
                                                              dns::QueryType type) {
  // RFC 5452 9.2: a random id (CSPRNG) and a fresh socket on a random ephemeral port (the
  // kernel's choice) per attempt, so an off-path attacker must guess about 32 bits.
  auto id = random_id();
  if (!id) co_return Error::internal("dns_random_failed", "getrandom() failed");
  auto query_bytes = dns::build_query(*id, name, type);
  if (!query_bytes) co_return query_bytes.error();

  auto socket = std::make_shared<asio::ip::udp::socket>(executor_);
  asio::error_code ec;
  socket->open(server.protocol(), ec);
  // connect(): the kernel drops datagrams from any other address and port, and reports ICMP
  // port unreachable; the source is still checked below.
  if (!ec) socket->connect(server, ec);
  if (ec) {
    co_return Error::upstream("dns_unreachable",
                              fmt::format("cannot reach {}: {}", endpoint_text(server),
                                          ec.message()),
                              true);
  }
  co_await socket->async_send(asio::buffer(*query_bytes), asio::redirect_error(kAwait, ec));
  ++counters_.queries_sent;
  if (ec) {
    co_return Error::upstream(
        "dns_unreachable",
        fmt::format("cannot send to {}: {}", endpoint_text(server), ec.message()), true);
  }

  // The deadline closes the socket: any receive in progress, or the next one, fails at once.
  // The handler holds the socket, so it may outlive this frame safely.
  auto timed_out = std::make_shared<bool>(false);
  asio::steady_timer deadline(executor_, config_.timeout);
  deadline.async_wait([socket, timed_out](const asio::error_code& wait_error) {
    if (wait_error) return;
    *timed_out = true;
    asio::error_code ignored;
    socket->close(ignored);
  });

  std::vector<std::uint8_t> buffer(kUdpBufferSize);
  std::string last_ignored;
  for (;;) {
    asio::ip::udp::endpoint from;
    std::size_t n = 0;
    if (!*timed_out) {
      n = co_await socket->async_receive_from(asio::buffer(buffer), from,
                                              asio::redirect_error(kAwait, ec));
    }
    if (*timed_out) {
      ++counters_.timeouts;
      co_return Error::upstream(
          "dns_timeout",
          fmt::format("no valid answer from {} for {} {} within {} ms{}", endpoint_text(server),
                      name, dns::to_string(type), config_.timeout.count(),
                      last_ignored.empty() ? "" : " (ignored: " + last_ignored + ")"),
          true);
    }
    if (ec) {
      deadline.cancel();
      co_return Error::upstream(
          ec == asio::error::connection_refused ? "dns_unreachable" : "dns_socket_error",
          fmt::format("{}: {}", endpoint_text(server), ec.message()), true);
    }
    // RFC 5452 9.1: only a response from the server we asked, with our id and our question,
    // counts; anything else is dropped and we keep listening until the deadline.
    if (from != server) {
      ++counters_.responses_ignored;
      last_ignored = "a response from " + endpoint_text(from);
      continue;
    }
    auto answer = dns::parse_response(std::span(buffer.data(), n), *id, name, type);
    if (!answer) {
      ++counters_.responses_ignored;
      last_ignored = answer.error().code;
      continue;
    }
    deadline.cancel();
    co_return answer;
  }
}

asio::awaitable<Result<dns::DnsAnswer>> Resolver::tcp_attempt(asio::ip::udp::endpoint server,
                                                              std::string name,
                                                              dns::QueryType type) {
  auto id = random_id();
  if (!id) co_return Error::internal("dns_random_failed", "getrandom() failed");
  auto query_bytes = dns::build_query(*id, name, type);
  if (!query_bytes) co_return query_bytes.error();
  // RFC 1035 4.2.2: the message is prefixed with its length as two bytes.
  std::array<std::uint8_t, 2> prefix{static_cast<std::uint8_t>(query_bytes->size() >> 8),
                                     static_cast<std::uint8_t>(query_bytes->size() & 0xff)};

  auto socket = std::make_shared<asio::ip::tcp::socket>(executor_);
  auto timed_out = std::make_shared<bool>(false);
  asio::steady_timer deadline(executor_, config_.timeout);
  deadline.async_wait([socket, timed_out](const asio::error_code& wait_error) {
    if (wait_error) return;
    *timed_out = true;
    asio::error_code ignored;
    socket->close(ignored);
  });
  auto fail = [&](const asio::error_code& ec) -> Error {
    deadline.cancel();
    if (*timed_out) {
      ++counters_.timeouts;
      return Error::upstream("dns_timeout",
                             fmt::format("no TCP answer from {} within {} ms",
                                         endpoint_text(server), config_.timeout.count()),
                             true);
    }
    return Error::upstream("dns_tcp_failed",
                           fmt::format("TCP to {}: {}", endpoint_text(server), ec.message()),
                           true);
  };

  asio::error_code ec;
  const asio::ip::tcp::endpoint target(server.address(), server.port());
  co_await socket->async_connect(target, asio::redirect_error(kAwait, ec));
  if (ec || *timed_out) co_return fail(ec);
  std::array<asio::const_buffer, 2> request{asio::buffer(prefix), asio::buffer(*query_bytes)};
  co_await asio::async_write(*socket, request, asio::redirect_error(kAwait, ec));
  if (ec || *timed_out) co_return fail(ec);
  std::array<std::uint8_t, 2> length{};
  co_await asio::async_read(*socket, asio::buffer(length), asio::redirect_error(kAwait, ec));
  if (ec || *timed_out) co_return fail(ec);
  std::vector<std::uint8_t> response(static_cast<std::size_t>((length[0] << 8) | length[1]));
  co_await asio::async_read(*socket, asio::buffer(response), asio::redirect_error(kAwait, ec));
  if (ec || *timed_out) co_return fail(ec);
  deadline.cancel();
  co_return dns::parse_response(response, *id, name, type);
}

// ---- cache ------------------------------------------------------------------------------------

std::chrono::seconds Resolver::clamp_ttl(std::chrono::seconds ttl, std::chrono::seconds high) const {
  // The upper bound wins if the configuration has min above max.
  return std::min(std::max(ttl, config_.min_ttl), high);
}

std::optional<Result<Resolution>> Resolver::cache_lookup(const std::string& name) {
  auto it = cache_.find(name);
  if (it == cache_.end()) return std::nullopt;
  const auto now = Clock::now();
  if (it->second.expires <= now) {
    insertion_order_.erase(it->second.order);
    cache_.erase(it);
    return std::nullopt;
  }
  if (it->second.error) return Result<Resolution>(*it->second.error);
  // Round the time left up, so a live entry never reports a TTL of 0.
  const auto left = std::chrono::ceil<seconds>(it->second.expires - now);
  return Result<Resolution>(Resolution{it->second.addresses, Resolution::Source::kCache, left, {}});
}

void Resolver::cache_store(const std::string& name, CacheEntry entry, std::chrono::seconds ttl) {
  if (config_.max_cache_entries == 0 || ttl <= seconds(0)) return;
  if (auto it = cache_.find(name); it != cache_.end()) {
    insertion_order_.erase(it->second.order);
    cache_.erase(it);
  }
  // Bounded: drop the oldest entries (insertion order); expired ones are not counted.
  const auto now = Clock::now();
  while (cache_.size() >= config_.max_cache_entries) {
    auto oldest = cache_.find(insertion_order_.front());
    if (oldest->second.expires > now) ++counters_.cache_evictions;
    cache_.erase(oldest);
    insertion_order_.pop_front();
  }
  entry.expires = now + ttl;
  entry.order = insertion_order_.insert(insertion_order_.end(), name);
  cache_.emplace(name, std::move(entry));
}

std::optional<std::uint16_t> Resolver::random_id() {
  if (random_pool_.size() - random_used_ < 2) {
    random_pool_.resize(kRandomPoolSize);
    std::size_t filled = 0;
    while (filled < random_pool_.size()) {
      ssize_t n = ::getrandom(random_pool_.data() + filled, random_pool_.size() - filled, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        random_pool_.clear();
        random_used_ = 0;
        return std::nullopt;
      }
      filled += static_cast<std::size_t>(n);
    }
    random_used_ = 0;
  }
  auto id = static_cast<std::uint16_t>((random_pool_[random_used_] << 8) |
                                       random_pool_[random_used_ + 1]);
  random_used_ += 2;
  return id;
}

}  // namespace moat::core::net
