#include "core/obs/admin_server.hpp"

#include <array>
#include <exception>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <utility>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <spdlog/spdlog.h>

#include "core/obs/metrics.hpp"
#include "core/runtime/worker_pool.hpp"

namespace moat::core::obs {

namespace {

using asio::ip::tcp;

// --- request head ------------------------------------------------------------------------------
// A deliberately small subset of RFC 9112: one request line, header lines that look like
// `name: value`, CRLF line endings only. Nothing in the head is used except method and target,
// so anything unusual is refused rather than interpreted.

enum class Scan { kNeedMore, kComplete, kBad };

bool is_tchar(char c) {  // RFC 9110 5.6.2
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!is_tchar(c)) return false;
  }
  return true;
}

struct RequestLine {
  std::string_view method;
  std::string_view target;
  int status = 0;  // 0: valid; otherwise the error status to answer with
};

RequestLine parse_request_line(std::string_view line) {
  RequestLine r;
  const auto sp1 = line.find(' ');
  const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    r.status = 400;
    return r;
  }
  r.method = line.substr(0, sp1);
  r.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const auto version = line.substr(sp2 + 1);
  if (!is_token(r.method) || r.target.empty() || r.target.front() != '/') {
    r.status = 400;
    return r;
  }
  for (char c : r.target) {
    if (c <= 0x20 || c >= 0x7F) {
      r.status = 400;
      return r;
    }
  }
  if (version == "HTTP/1.1" || version == "HTTP/1.0") return r;
  const bool http_like = version.size() == 8 && version.starts_with("HTTP/") &&
                         version[5] >= '0' && version[5] <= '9' && version[6] == '.' &&
                         version[7] >= '0' && version[7] <= '9';
  r.status = http_like ? 505 : 400;
  return r;
}

// Looks at what has arrived so far. Refuses early (without waiting for the deadline) on bytes
// that can never start a valid head: control characters, bare LF, a bad request line.
Scan scan_head(std::string_view data, std::size_t& head_length) {
  for (std::size_t i = 0; i < data.size(); ++i) {
    const auto c = static_cast<unsigned char>(data[i]);
    if ((c < 0x20 && c != '\r' && c != '\n' && c != '\t') || c == 0x7F) return Scan::kBad;
    if (c == '\n' && (i == 0 || data[i - 1] != '\r')) return Scan::kBad;
    if (c == '\r' && i + 1 < data.size() && data[i + 1] != '\n') return Scan::kBad;
  }
  if (auto eol = data.find("\r\n"); eol != std::string_view::npos) {
    if (parse_request_line(data.substr(0, eol)).status == 400) return Scan::kBad;
  }
  if (auto end = data.find("\r\n\r\n"); end != std::string_view::npos) {
    head_length = end + 4;
    return Scan::kComplete;
  }
  return Scan::kNeedMore;
}

const char* reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Status";
  }
}

std::string render_response(const AdminResponse& response, bool head_only,
                            bool allow_header = false) {
  std::string out;
  out.reserve(160 + (head_only ? 0 : response.body.size()));
  out += "HTTP/1.1 ";
  out += std::to_string(response.status);
  out += ' ';
  out += reason(response.status);
  out += "\r\nContent-Type: ";
  out += response.content_type;
  out += "\r\nContent-Length: ";
  out += std::to_string(response.body.size());
  out += "\r\nCache-Control: no-store\r\nConnection: close\r\n";
  if (allow_header) out += "Allow: GET, HEAD\r\n";
  out += "\r\n";
  if (!head_only) out += response.body;
  return out;
}

// Last-resort handler for the server's coroutines: an unexpected exception (bad_alloc) is logged
// and ends that coroutine only, instead of escaping run() and terminating the process.
void log_failure(std::exception_ptr failure) {
  if (!failure) return;
  try {
    std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    spdlog::error("admin: {}", e.what());
  } catch (...) {
    spdlog::error("admin: unknown exception");
  }
}

std::string error_response(int status, bool head_only = false) {
  AdminResponse r;
  r.status = status;
  r.body = std::string(reason(status)) + "\n";
  return render_response(r, head_only, status == 405);
}

}  // namespace

// --- server ------------------------------------------------------------------------------------

struct AdminServer::Impl {
  // One accepted connection. Shared with its deadline timer's handler (weakly), which may run
  // after the connection finished.
  struct Connection {
    explicit Connection(tcp::socket s) : socket(std::move(s)), timer(socket.get_executor()) {}
    tcp::socket socket;
    asio::steady_timer timer;
    unsigned generation = 0;  // which arm() the pending timer belongs to
    bool timed_out = false;

    void arm(std::chrono::milliseconds timeout, const std::shared_ptr<Connection>& self) {
      timed_out = false;
      const unsigned gen = ++generation;
      timer.expires_after(timeout);
      timer.async_wait([weak = std::weak_ptr<Connection>(self), gen](asio::error_code ec) {
        auto c = weak.lock();
        if (ec || !c || c->generation != gen) return;
        c->timed_out = true;
        asio::error_code ignored;
        c->socket.cancel(ignored);
      });
    }
    void disarm() {
      ++generation;
      timer.cancel();
    }
  };

  asio::io_context context{1};
  tcp::acceptor acceptor{context};
  std::thread thread;
  std::uint16_t port = 0;  // set before the thread starts, read-only afterwards
  std::unordered_set<std::shared_ptr<Connection>> connections;  // admin thread only
  bool stopping = false;                                        // admin thread only

  asio::awaitable<void> accept_loop(AdminServer& server);
  asio::awaitable<void> serve(AdminServer& server, std::shared_ptr<Connection> c);
  void close_all();
};

asio::awaitable<void> AdminServer::Impl::accept_loop(AdminServer& server) {
  asio::steady_timer backoff(context);
  while (!stopping) {
    asio::error_code ec;
    tcp::socket socket =
        co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (stopping || ec == asio::error::operation_aborted) break;
    if (ec) {
      // EMFILE and friends: do not spin; the listener is not on any worker's path.
      spdlog::warn("admin: accept failed: {}", ec.message());
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    if (connections.size() >= server.options_.max_connections) {
      socket.close(ec);  // bounded: a flood of scrapers cannot exhaust descriptors
      continue;
    }
    auto c = std::make_shared<Connection>(std::move(socket));
    connections.insert(c);
    asio::co_spawn(context, serve(server, c), log_failure);
  }
}

asio::awaitable<void> AdminServer::Impl::serve(AdminServer& server,
                                               std::shared_ptr<Connection> c) {
  const AdminOptions& options = server.options_;
  std::string buffer(options.max_request_head, '\0');
  std::size_t received = 0;
  std::size_t head_length = 0;
  std::string response;
  asio::error_code ec;

  c->arm(options.read_timeout, c);
  for (;;) {
    if (received == buffer.size()) {
      response = error_response(431);
      break;
    }
    const std::size_t n = co_await c->socket.async_read_some(
        asio::buffer(buffer.data() + received, buffer.size() - received),
        asio::redirect_error(asio::use_awaitable, ec));
    received += n;
    if (ec) {
      // Deadline: say why before closing. Peer gone or server stopping: nothing to say.
      if (c->timed_out && !stopping) response = error_response(408);
      break;
    }
    const Scan scan = scan_head(std::string_view(buffer.data(), received), head_length);
    if (scan == Scan::kBad) {
      response = error_response(400);
      break;
    }
    if (scan == Scan::kComplete) {
      response = server.respond(std::string_view(buffer.data(), head_length));
      break;
    }
  }

  if (!response.empty() && !stopping) {
    c->arm(options.write_timeout, c);
    co_await asio::async_write(c->socket, asio::buffer(response),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) {
      // Lingering close: if unread request bytes remain when the socket closes, the kernel sends
      // RST and the client may lose the response. Half-close, then drain briefly until EOF.
      c->socket.shutdown(tcp::socket::shutdown_send, ec);
      c->arm(std::chrono::milliseconds(1000), c);
      std::array<char, 4096> sink;
      for (std::size_t drained = 0; !ec && drained < 64 * 1024;) {
        drained += co_await c->socket.async_read_some(
            asio::buffer(sink), asio::redirect_error(asio::use_awaitable, ec));
      }
    }
  }
  c->disarm();
  c->socket.close(ec);
  connections.erase(c);
}

void AdminServer::Impl::close_all() {
  stopping = true;
  asio::error_code ec;
  acceptor.close(ec);
  for (const auto& c : connections) {
    c->disarm();
    c->socket.close(ec);  // pending operations complete with operation_aborted
  }
}

AdminServer::AdminServer(std::string listen_address, const MetricsRegistry& metrics,
                         AdminRoutes routes, AdminOptions options)
    : listen_address_(std::move(listen_address)),
      metrics_(metrics),
      routes_(std::move(routes)),
      options_(options) {
  if (options_.max_request_head < 16) options_.max_request_head = 16;
}

AdminServer::~AdminServer() { stop(); }

Result<void> AdminServer::start() {
  if (impl_) return Error::internal("admin_started", "the admin server is already running");
  auto endpoint = runtime::parse_listen_address(listen_address_);
  if (!endpoint) return endpoint.error();

  auto impl = std::make_unique<Impl>();
  // No SO_REUSEPORT here (unlike worker listeners): a second moat on the same admin port must
  // fail loudly rather than silently receive half of the scrapes.
  asio::error_code ec;
  impl->acceptor.open(endpoint->protocol(), ec);
  if (!ec) impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec && endpoint->address().is_v6()) impl->acceptor.set_option(asio::ip::v6_only(true), ec);
  if (!ec) impl->acceptor.bind(*endpoint, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Error::config("admin_listen_failed",
                         "cannot listen on " + listen_address_ + ": " + ec.message());
  }
  impl->port = impl->acceptor.local_endpoint(ec).port();
  asio::co_spawn(impl->context, impl->accept_loop(*this), log_failure);
  impl->thread = std::thread([ctx = &impl->context] { ctx->run(); });
  impl_ = std::move(impl);
  return {};
}

void AdminServer::stop() {
  if (!impl_) return;
  // Closing everything lets each coroutine finish, after which run() returns by itself.
  asio::post(impl_->context, [impl = impl_.get()] { impl->close_all(); });
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_.reset();
}

std::uint16_t AdminServer::local_port() const {
  return impl_ ? impl_->port : 0;
}

std::string AdminServer::respond(std::string_view request_head) const {
  const auto eol = request_head.find("\r\n");
  if (eol == std::string_view::npos) return error_response(400);
  const RequestLine line = parse_request_line(request_head.substr(0, eol));
  if (line.status != 0) return error_response(line.status);
  // Header lines: `name: value`, no obsolete line folding, nothing else interpreted.
  for (auto rest = request_head.substr(eol + 2); rest.size() > 2;) {
    const auto end = rest.find("\r\n");
    if (end == std::string_view::npos) return error_response(400);
    const auto field = rest.substr(0, end);
    const auto colon = field.find(':');
    if (colon == std::string_view::npos || !is_token(field.substr(0, colon))) {
      return error_response(400);
    }
    rest.remove_prefix(end + 2);
  }

  const bool head_only = line.method == "HEAD";
  if (line.method != "GET" && !head_only) return error_response(405);
  const std::string_view path = line.target.substr(0, line.target.find('?'));

  AdminResponse response;
  try {
    if (auto route = routes_.find(path); route != routes_.end()) {
      response = route->second();
    } else if (path == "/metrics") {
      response.content_type = std::string(MetricsRegistry::kContentType);
      response.body = metrics_.render_prometheus();
    } else if (path == "/healthz") {
      const bool ok = healthy();
      response.status = ok ? 200 : 503;
      response.body = ok ? "ok\n" : "draining\n";
    } else {
      return error_response(404, head_only);
    }
  } catch (const std::exception& e) {
    // Last-resort handler: a failing route must not take the admin thread down.
    spdlog::error("admin: handler for {} failed: {}", path, e.what());
    return error_response(500, head_only);
  } catch (...) {
    spdlog::error("admin: handler for {} failed", path);
    return error_response(500, head_only);
  }
  return render_response(response, head_only);
}

}  // namespace moat::core::obs
