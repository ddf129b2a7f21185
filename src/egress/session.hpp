// egress: one client connection, from accept to close. The phases run in order in
// Session::run() (session.cpp); each returns "continue" or ends the session with a cause.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include "core/base/result.hpp"
#include "core/net/address.hpp"
#include "core/obs/json_line.hpp"
#include "core/policy/matcher.hpp"
#include "egress/config.hpp"

namespace moat::core::net {
class Resolver;
}
namespace moat::core::http {
class RequestHeadParser;
}
namespace moat::core::runtime {
class PipePool;
}

namespace moat::egress {

class Server;

class Session;

// What one worker owns: nothing here is shared with another worker.
struct WorkerState {
  std::size_t index = 0;
  std::vector<std::shared_ptr<asio::ip::tcp::acceptor>> acceptors;
  std::unordered_set<Session*> sessions;  // open sessions, for shutdown
  std::chrono::steady_clock::time_point last_accept_warning;
  std::shared_ptr<const EgressConfig> resolver_config;  // the config the resolver was built for
  std::shared_ptr<core::net::Resolver> resolver;
  std::unique_ptr<core::runtime::PipePool> pipes;
  core::obs::JsonLine audit_line;
  // TLS 1.3 hides the certificate: pins are checked by a handshake of moat's own, whose
  // result is cached per host and address.
  struct PinCacheEntry {
    std::vector<std::string> pins;  // the chain's SPKI pins
    std::chrono::steady_clock::time_point expires;
  };
  std::unordered_map<std::string, PinCacheEntry> pin_cache;
  std::shared_ptr<void> verify_tls_context;  // asio::ssl::context, made on first use
};

// Everything the audit record says about one connection.
struct SessionRecord {
  std::chrono::system_clock::time_point start_time;
  std::chrono::steady_clock::time_point start;
  std::string client;
  std::uint16_t client_port = 0;
  const char* listener = "connect";
  std::string group;
  std::string user;
  std::string method;
  std::string host;
  std::uint16_t port = 0;
  std::string sni;
  bool has_sni = false;
  const char* decision = "deny";  // allow, deny, error (upstream failed), none (no request)
  bool report_only = false;  // report mode let through what enforce mode would deny
  std::string reason;
  const char* code = "";  // stable token: allowed, host_not_in_policy, sni_mismatch, ...
  std::string policy;
  std::string service;
  std::string purpose;
  std::string upstream;
  std::uint16_t offered_tls = 0;
  std::uint16_t negotiated_tls = 0;  // from the ServerHello, when upstream checks read it
  std::string upstream_pin;          // the pin that matched, or what was seen on a mismatch
  const char* pin_source = "";       // "certificate" (TLS 1.2) or "verification" (TLS 1.3)
  int status = 0;
  std::uint64_t bytes_up = 0;
  std::uint64_t bytes_down = 0;
  const char* phase = "accept";    // where the session ended
  const char* termination = "";    // who ended it: client, upstream, proxy, timeout
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Server& server, WorkerState& worker, std::shared_ptr<const EgressConfig> config,
          asio::ip::tcp::socket client, bool transparent);
  ~Session();

  asio::awaitable<void> run();
  // Shutdown: closes the sockets so the session ends and writes its record. Tunnels already
  // pumping are spared unless `tunnels_too`.
  void abort(bool tunnels_too);

 private:
  enum class Step { kContinue, kDone };

  asio::awaitable<void> run_phases();
  // The phases, in the order run_phases() calls them.
  asio::awaitable<Step> read_request();
  asio::awaitable<Step> prepare_plain_http(const core::http::RequestHeadParser& parser);
  Step identify_client();
  Step decide();
  asio::awaitable<Step> resolve();
  asio::awaitable<Step> connect_upstream();
  asio::awaitable<Step> reply_established();
  asio::awaitable<Step> read_client_hello();
  Step check_client_hello();
  asio::awaitable<Step> forward_hello();
  asio::awaitable<Step> check_upstream();
  // The SPKI pins of the chain the upstream presents to a handshake of moat's own.
  asio::awaitable<core::Result<std::vector<std::string>>> fetch_chain_pins();
  asio::awaitable<void> pump();

  // Ends the session with an HTTP error reply (CONNECT listener) or a plain close.
  // `code` is a stable token for metrics and logs; `reason` the sentence a person reads.
  asio::awaitable<Step> refuse(int status, const char* code, std::string reason,
                               const char* termination = "proxy");
  // Records a ClientHello check failure; in report mode the session goes on (returns true).
  bool fail_check(const char* code, std::string reason);
  asio::awaitable<bool> read_more(std::size_t limit);
  void arm_deadline(std::chrono::milliseconds timeout, const char* phase);
  void disarm_deadline();
  void write_audit_record();

  Server& server_;
  WorkerState& worker_;
  std::shared_ptr<const EgressConfig> config_;
  std::shared_ptr<core::net::Resolver> resolver_;  // the one this session started with
  asio::ip::tcp::socket client_;
  asio::ip::tcp::socket upstream_;
  asio::steady_timer deadline_;
  bool transparent_;
  bool plain_http_ = false;  // an absolute-form http:// request, not a CONNECT tunnel
  bool timed_out_ = false;
  core::net::IpAddress client_address_;
  std::string buffer_;        // bytes read from the client, not yet forwarded
  std::size_t tunnel_start_ = 0;  // offset in buffer_ where tunnel bytes begin
  const Group* group_ = nullptr;
  core::policy::Destination destination_;
  core::policy::Match match_;
  std::vector<core::net::IpAddress> addresses_;
  bool counted_client_ = false;
  struct HelloSummary {
    bool valid = false;
    bool not_tls = false;
    std::string error;
  } hello_;
  SessionRecord record_;
};

}  // namespace moat::egress
