#include "edge/tls_stream.hpp"

#include <cerrno>

#include <openssl/err.h>
#include <asio/redirect_error.hpp>
#include <asio/ssl/error.hpp>
#include <asio/use_awaitable.hpp>

namespace moat::edge {

TlsStream::TlsStream(asio::ip::tcp::socket socket, SSL_CTX* context)
    : socket_(std::move(socket)), ssl_(SSL_new(context)) {
  asio::error_code ignored;
  socket_.non_blocking(true, ignored);
  if (ssl_ == nullptr) {
    failed_ = true;
    return;
  }
  SSL_set_fd(ssl_, static_cast<int>(socket_.native_handle()));
  // Partial writes: a write reports each record as it goes, so a send deadline can measure
  // progress. A moving buffer: a retried write may come from a reallocated string.
  SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // One recv takes everything available instead of a 5-byte header and then the record.
  SSL_set_read_ahead(ssl_, 1);
  SSL_set_accept_state(ssl_);
}

TlsStream::~TlsStream() {
  if (ssl_ != nullptr) SSL_free(ssl_);  // the socket (and its fd) is closed by socket_
}

TlsStream::Outcome TlsStream::classify(int ret, asio::error_code& ec) {
  if (ret > 0) return Outcome::kDone;
  const int error = SSL_get_error(ssl_, ret);
  switch (error) {
    case SSL_ERROR_WANT_READ:
      return Outcome::kWaitRead;
    case SSL_ERROR_WANT_WRITE:
      return Outcome::kWaitWrite;
    case SSL_ERROR_ZERO_RETURN:  // the client's close_notify
      ec = asio::error::eof;
      return Outcome::kFailed;
    case SSL_ERROR_SYSCALL: {
      failed_ = true;
      const int saved = errno;
      ec = saved == 0 ? asio::error_code(asio::error::eof)
                      : asio::error_code(saved, asio::error::get_system_category());
      ERR_clear_error();
      return Outcome::kFailed;
    }
    default: {
      failed_ = true;
      const unsigned long code = ERR_peek_last_error();
      if (ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        ec = asio::ssl::error::stream_truncated;
      } else {
        ec = asio::error_code(static_cast<int>(code), asio::error::get_ssl_category());
      }
      ERR_clear_error();
      return Outcome::kFailed;
    }
  }
}

asio::awaitable<bool> TlsStream::wait(Outcome outcome, asio::error_code& ec) {
  const auto what = outcome == Outcome::kWaitRead ? asio::socket_base::wait_read
                                                  : asio::socket_base::wait_write;
  co_await socket_.async_wait(what, asio::redirect_error(asio::use_awaitable, ec));
  co_return !ec;
}

// Runs `call` (an SSL_* call that returns 1 when done and puts the bytes it moved in its
// argument) until it is done or fails, waiting for the socket whenever OpenSSL would block.
template <typename Call>
asio::awaitable<std::size_t> TlsStream::until_done(Call call, asio::error_code& ec) {
  ec.clear();
  if (failed_) {
    ec = asio::error::bad_descriptor;
    co_return 0;
  }
  for (;;) {
    ERR_clear_error();
    std::size_t n = 0;
    const Outcome outcome = classify(call(n), ec);
    if (outcome == Outcome::kDone) co_return n;
    if (outcome == Outcome::kFailed) co_return 0;
    const bool ready = co_await wait(outcome, ec);
    if (!ready) co_return 0;
  }
}

asio::awaitable<void> TlsStream::handshake(asio::error_code& ec) {
  co_await until_done([this](std::size_t&) { return SSL_do_handshake(ssl_); }, ec);
}

asio::awaitable<std::size_t> TlsStream::read_some(asio::mutable_buffer buffer,
                                                  asio::error_code& ec) {
  const std::size_t n = co_await until_done(
      [this, buffer](std::size_t& done) {
        return SSL_read_ex(ssl_, buffer.data(), buffer.size(), &done);
      },
      ec);
  co_return n;
}

asio::awaitable<std::size_t> TlsStream::write_some(std::string_view bytes, asio::error_code& ec) {
  ec.clear();
  if (bytes.empty()) co_return 0;
  const std::size_t n = co_await until_done(
      [this, bytes](std::size_t& done) {
        return SSL_write_ex(ssl_, bytes.data(), bytes.size(), &done);
      },
      ec);
  co_return n;
}

asio::awaitable<void> TlsStream::write_all(std::string_view bytes, asio::error_code& ec) {
  ec.clear();
  while (!bytes.empty()) {
    const std::size_t n = co_await write_some(bytes, ec);
    if (ec) co_return;
    bytes.remove_prefix(n);
  }
}

asio::awaitable<void> TlsStream::shutdown(asio::error_code& ec) {
  ec.clear();
  if (failed_ || ssl_ == nullptr) co_return;
  // Send our close_notify (it may have to wait for room in the socket).
  for (;;) {
    ERR_clear_error();
    const int ret = SSL_shutdown(ssl_);
    if (ret >= 0) break;  // 0: sent, theirs not yet seen; 1: both done
    const Outcome outcome = classify(ret, ec);
    if (outcome == Outcome::kFailed) co_return;
    const bool ready = co_await wait(outcome, ec);
    if (!ready) co_return;
  }
  if (SSL_get_shutdown(ssl_) & SSL_RECEIVED_SHUTDOWN) co_return;
  // Then theirs: whatever comes before it is dropped.
  char sink[4096];
  for (std::size_t total = 0; total < (1u << 20);) {
    const std::size_t n = co_await read_some(asio::buffer(sink), ec);
    if (ec) break;
    total += n;
  }
  if (ec == asio::error::eof) ec.clear();
}

}  // namespace moat::edge
