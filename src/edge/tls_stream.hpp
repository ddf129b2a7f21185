// edge: a server-side TLS connection that lets OpenSSL read and write the socket itself
// (SSL_set_fd), waiting for readiness through Asio only when OpenSSL says it would block.
//
// Why not asio::ssl::stream: its engine copies every byte through a BIO pair and keeps about
// 68 KiB of buffers per connection for the connection's whole life, idle or not. Here OpenSSL's
// own 16 KiB record buffers are given back whenever a connection is idle
// (SSL_MODE_RELEASE_BUFFERS), a read is one recv of everything available (read-ahead), and a
// write is one send per record. Same model as nginx's ngx_ssl_recv/ngx_ssl_write.
//
// One reader and one writer may be pending at once (HTTP/2 reads and writes concurrently); both
// run on the connection's one thread. Renegotiation is off (edge/tls.cpp), so a read never has to
// wait for the socket to be writable except for a TLS 1.3 KeyUpdate reply, which it handles.
// Cancelling the socket (next_layer().cancel()) ends a pending wait with operation_aborted.
#pragma once

#include <cstddef>
#include <string_view>

#include <openssl/ssl.h>
#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>

namespace moat::edge {

class TlsStream {
 public:
  // Takes the accepted socket; `context` is the listener's default (SNI may switch it).
  TlsStream(asio::ip::tcp::socket socket, SSL_CTX* context);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  asio::ip::tcp::socket& next_layer() { return socket_; }
  SSL* native_handle() { return ssl_; }
  asio::any_io_executor get_executor() { return socket_.get_executor(); }

  // The server handshake. `ec`: eof when the client left, operation_aborted when cancelled, an
  // SSL-category error otherwise.
  asio::awaitable<void> handshake(asio::error_code& ec);
  // Whether OpenSSL holds bytes already read from the socket: then a read needs no wait on the
  // socket. An idle connection waits with next_layer().async_wait(wait_read) only when not.
  bool has_pending() const { return SSL_has_pending(ssl_) == 1; }
  // At least one byte of application data, or 0 with `ec` set: eof after the client's
  // close_notify or its FIN (a truncation is reported as asio::ssl::error::stream_truncated).
  asio::awaitable<std::size_t> read_some(asio::mutable_buffer buffer, asio::error_code& ec);
  // At least one record's worth of `bytes` (or all of them if shorter), or 0 with `ec` set.
  asio::awaitable<std::size_t> write_some(std::string_view bytes, asio::error_code& ec);
  // All of `bytes`, or `ec` set.
  asio::awaitable<void> write_all(std::string_view bytes, asio::error_code& ec);
  // Our close_notify, then reads (and drops) until the client's close_notify or FIN, so that
  // closing does not answer late client bytes with a reset. The caller bounds it in time.
  asio::awaitable<void> shutdown(asio::error_code& ec);

 private:
  enum class Outcome { kDone, kWaitRead, kWaitWrite, kFailed };
  // Classifies the result `ret` of an SSL_* call; sets `ec` when it failed.
  Outcome classify(int ret, asio::error_code& ec);
  template <typename Call>
  asio::awaitable<std::size_t> until_done(Call call, asio::error_code& ec);
  // Waits for the socket; false (with `ec`) when the wait was cancelled or failed.
  asio::awaitable<bool> wait(Outcome outcome, asio::error_code& ec);

  asio::ip::tcp::socket socket_;
  SSL* ssl_ = nullptr;
  bool failed_ = false;  // a fatal error happened: no close_notify (OpenSSL forbids it)
};

}  // namespace moat::edge
