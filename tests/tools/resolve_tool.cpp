// resolve_tool: drives core::net::Resolver from the command line for the integration tests
// (tests/integration/test_dns_resolver.py). Prints one JSON object per line: one per result,
// then the resolver's counters.
//
//   resolve_tool [--nameserver IP:PORT]... [--timeout-ms N] [--attempts N] [--min-ttl S]
//                [--max-ttl S] [--negative-ttl S] [--hosts-file PATH] [--override NAME=IP[,IP]]
//                [--concurrent K] [--repeat-after-ms N] NAME...
//
// Each NAME is resolved in round 1 (K times concurrently with --concurrent, to show coalescing),
// again at once in round 2 (the cache), and, with --repeat-after-ms, in round 3 after that delay
// (to see a TTL expire). Without --nameserver, /etc/resolv.conf is read. Exit status: 0 when
// every lookup ran (whatever its result), 2 on a usage error.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "core/dns/resolver.hpp"
#include "core/runtime/worker_pool.hpp"

namespace {

using moat::core::Result;
using moat::core::net::IpAddress;
using moat::core::net::Resolution;
using moat::core::net::Resolver;
using moat::core::net::ResolverConfig;

struct Options {
  ResolverConfig config;
  bool have_nameserver = false;
  int concurrent = 1;
  long repeat_after_ms = -1;
  std::vector<std::string> names;
};

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<int>(c));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

void print_result(const std::string& name, int round, const Result<Resolution>& r) {
  std::string line = fmt::format("{{\"name\":{},\"round\":{},\"ok\":{}", json_string(name), round,
                                 r.ok() ? "true" : "false");
  if (r) {
    std::string addresses;
    for (const IpAddress& a : r->addresses) {
      addresses += (addresses.empty() ? "" : ",") + json_string(a.to_string());
    }
    line += fmt::format(",\"addresses\":[{}],\"source\":\"{}\",\"ttl\":{},\"latency_us\":{}",
                        addresses, to_string(r->source), r->ttl.count(), r->latency.count());
  } else {
    line += fmt::format(",\"error\":{},\"message\":{}", json_string(r.error().code),
                        json_string(r.error().message));
  }
  std::printf("%s}\n", line.c_str());
  std::fflush(stdout);
}

void print_counters(const Resolver& resolver) {
  const auto& c = resolver.counters();
  std::printf(
      "{\"counters\":{\"lookups\":%llu,\"static_hits\":%llu,\"cache_hits\":%llu,"
      "\"cache_misses\":%llu,\"coalesced\":%llu,\"queries_sent\":%llu,\"tcp_queries\":%llu,"
      "\"timeouts\":%llu,\"responses_ignored\":%llu,\"cache_evictions\":%llu},"
      "\"cache_size\":%zu}\n",
      static_cast<unsigned long long>(c.lookups), static_cast<unsigned long long>(c.static_hits),
      static_cast<unsigned long long>(c.cache_hits),
      static_cast<unsigned long long>(c.cache_misses),
      static_cast<unsigned long long>(c.coalesced),
      static_cast<unsigned long long>(c.queries_sent),
      static_cast<unsigned long long>(c.tcp_queries), static_cast<unsigned long long>(c.timeouts),
      static_cast<unsigned long long>(c.responses_ignored),
      static_cast<unsigned long long>(c.cache_evictions), resolver.cache_size());
  std::fflush(stdout);
}

// Resolves `name` K times at once and prints each result.
asio::awaitable<void> resolve_concurrently(Resolver& resolver, std::string name, int count) {
  auto executor = co_await asio::this_coro::executor;
  auto left = std::make_shared<int>(count);
  auto all_done = std::make_shared<asio::steady_timer>(executor,
                                                       asio::steady_timer::time_point::max());
  for (int i = 0; i < count; ++i) {
    asio::co_spawn(
        executor,
        [&resolver, name, left, all_done]() -> asio::awaitable<void> {
          auto r = co_await resolver.resolve(name);
          print_result(name, 1, r);
          if (--*left == 0) all_done->cancel();
        },
        asio::detached);
  }
  while (*left > 0) {
    asio::error_code ec;
    co_await all_done->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

asio::awaitable<void> run(Resolver& resolver, const Options& options) {
  for (const auto& name : options.names) {
    co_await resolve_concurrently(resolver, name, options.concurrent);
    print_result(name, 2, co_await resolver.resolve(name));
    if (options.repeat_after_ms >= 0) {
      asio::steady_timer timer(co_await asio::this_coro::executor,
                               std::chrono::milliseconds(options.repeat_after_ms));
      asio::error_code ec;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      print_result(name, 3, co_await resolver.resolve(name));
    }
  }
  print_counters(resolver);
}

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "resolve_tool: %s\nusage: resolve_tool [--nameserver IP:PORT]... [--timeout-ms N] "
               "[--attempts N] [--min-ttl S] [--max-ttl S] [--negative-ttl S] "
               "[--hosts-file PATH] [--override NAME=IP[,IP]] [--concurrent K] "
               "[--repeat-after-ms N] NAME...\n",
               why.c_str());
  std::exit(2);
}

long number(const std::string& flag, const char* text) {
  char* end = nullptr;
  long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < 0) usage(flag + " wants a whole number");
  return v;
}

Options parse_options(int argc, char** argv) {
  Options o;
  o.config.hosts_file = "";  // only with --hosts-file, so tests never depend on the machine's
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--nameserver") {
      auto endpoint = moat::core::runtime::parse_listen_address(value());
      if (!endpoint) usage(endpoint.error().message);
      o.config.nameservers.emplace_back(endpoint->address(), endpoint->port());
      o.have_nameserver = true;
    } else if (arg == "--timeout-ms") {
      o.config.timeout = std::chrono::milliseconds(number(arg, value()));
    } else if (arg == "--attempts") {
      o.config.attempts = static_cast<int>(number(arg, value()));
    } else if (arg == "--min-ttl") {
      o.config.min_ttl = std::chrono::seconds(number(arg, value()));
    } else if (arg == "--max-ttl") {
      o.config.max_ttl = std::chrono::seconds(number(arg, value()));
    } else if (arg == "--negative-ttl") {
      o.config.negative_ttl = std::chrono::seconds(number(arg, value()));
    } else if (arg == "--hosts-file") {
      o.config.hosts_file = value();
    } else if (arg == "--override") {
      std::string spec = value();
      auto eq = spec.find('=');
      if (eq == std::string::npos) usage("--override wants NAME=IP[,IP]");
      auto& list = o.config.overrides[spec.substr(0, eq)];
      std::string_view rest = std::string_view(spec).substr(eq + 1);
      while (!rest.empty()) {
        auto comma = rest.find(',');
        auto ip = moat::core::net::parse_ip_strict(rest.substr(0, comma));
        if (!ip) usage("--override: not an IP address: " + std::string(rest.substr(0, comma)));
        list.push_back(*ip);
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
      }
    } else if (arg == "--concurrent") {
      o.concurrent = static_cast<int>(number(arg, value()));
      if (o.concurrent < 1) usage("--concurrent wants at least 1");
    } else if (arg == "--repeat-after-ms") {
      o.repeat_after_ms = number(arg, value());
    } else if (arg.starts_with("--")) {
      usage("unknown option " + arg);
    } else {
      o.names.push_back(arg);
    }
  }
  if (o.names.empty()) usage("no NAME given");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Options options = parse_options(argc, argv);
  if (!options.have_nameserver) {
    auto system = moat::core::net::system_resolver_config();
    if (!system) usage(system.error().message);
    options.config.nameservers = system->nameservers;
  }
  asio::io_context context(1);
  Resolver resolver(context, options.config);
  if (resolver.hosts_error()) {
    std::fprintf(stderr, "resolve_tool: hosts file: %s\n", resolver.hosts_error()->message.c_str());
  }
  asio::co_spawn(context, run(resolver, options), asio::detached);
  context.run();
  return 0;
}
