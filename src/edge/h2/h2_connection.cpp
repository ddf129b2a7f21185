// The nghttp2 server session of one connection, with the edge's defences. nghttp2's HTTP
// messaging checks stay on: it refuses malformed pseudo-headers, connection-specific fields
// (RFC 9113 8.2.2), TE other than "trailers", upper-case names and Content-Length disagreeing
// with the DATA received, each as a stream PROTOCOL_ERROR. What nghttp2 does not bound
// (decoded header list size, frame rates, request body memory) is counted here.
#include "edge/h2/h2_connection.hpp"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>

namespace moat::edge {

namespace {

using Clock = std::chrono::steady_clock;

std::string_view view(const std::uint8_t* p, std::size_t n) {
  return {reinterpret_cast<const char*>(p), n};
}

bool parse_length(std::string_view v, std::uint64_t& out) {
  if (v.empty() || v.size() > 19) return false;
  std::uint64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  out = n;
  return true;
}

}  // namespace

const char* h2_defence_name(H2Defence d) {
  switch (d) {
    case H2Defence::kNone: return "none";
    case H2Defence::kRapidReset: return "rapid_reset";
    case H2Defence::kContinuationFlood: return "continuation_flood";
    case H2Defence::kHeaderBlockTooLarge: return "header_block";
    case H2Defence::kSettingsFlood: return "settings_flood";
    case H2Defence::kPingFlood: return "ping_flood";
    case H2Defence::kAckFlood: return "ack_flood";
    case H2Defence::kProtocolError: return "protocol_error";
  }
  return "none";
}

struct H2Connection::Callbacks {
  static H2Connection& self(void* user) { return *static_cast<H2Connection*>(user); }

  // Frame headers arrive before their payload: counting here stops a flood before any of its
  // payload is decoded.
  static int on_begin_frame(nghttp2_session*, const nghttp2_frame_hd* hd, void* user) {
    H2Connection& c = self(user);
    ++c.frames_received_;
    switch (hd->type) {
      case NGHTTP2_HEADERS:
        c.block_bytes_ = hd->length;
        c.continuations_ = 0;
        if (c.block_bytes_ > c.limits_.max_header_block_bytes) {
          c.trip(H2Defence::kHeaderBlockTooLarge);
          return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        break;
      case NGHTTP2_CONTINUATION:
        // CVE-2024-27316 and friends: a header block that never ends.
        c.block_bytes_ += hd->length;
        ++c.continuations_;
        if (c.continuations_ > c.limits_.max_continuations) {
          c.trip(H2Defence::kContinuationFlood);
          return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        if (c.block_bytes_ > c.limits_.max_header_block_bytes) {
          c.trip(H2Defence::kHeaderBlockTooLarge);
          return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        break;
      case NGHTTP2_SETTINGS:
        if ((hd->flags & NGHTTP2_FLAG_ACK) == 0 &&
            !c.count_per_second(c.settings_count_, c.settings_window_,
                                c.limits_.max_settings_per_second)) {
          c.trip(H2Defence::kSettingsFlood);
          return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        break;
      case NGHTTP2_PING:
        if ((hd->flags & NGHTTP2_FLAG_ACK) == 0 &&
            !c.count_per_second(c.ping_count_, c.ping_window_, c.limits_.max_pings_per_second)) {
          c.trip(H2Defence::kPingFlood);
          return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        break;
      default:
        break;
    }
    return 0;
  }

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    H2Connection& c = self(user);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    Stream& s = c.streams_[frame->hd.stream_id];
    s.request.id = frame->hd.stream_id;
    s.last_input = Clock::now();
    ++c.requests_;
    return 0;
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
                       std::size_t name_length, const std::uint8_t* value,
                       std::size_t value_length, std::uint8_t, void* user) {
    H2Connection& c = self(user);
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    Stream* s = c.find(frame->hd.stream_id);
    if (s == nullptr || s->headers_done) return 0;  // trailers: not forwarded
    H2Request& r = s->request;
    r.header_bytes += name_length + value_length + 32;  // RFC 9113 6.5.2
    if (r.header_bytes > c.limits_.max_header_list_bytes) {
      r.header_too_large = true;  // the rest is decoded (HPACK state) but not kept
      return 0;
    }
    if (r.header_too_large) return 0;
    std::string_view n = view(name, name_length);
    std::string_view v = view(value, value_length);
    if (n == ":method") {
      r.method = v;
    } else if (n == ":scheme") {
      r.scheme = v;
    } else if (n == ":authority") {
      r.authority = v;
    } else if (n == ":path") {
      r.path = v;
    } else if (!n.empty() && n.front() == ':') {
      // :protocol (extended CONNECT) is not enabled: nghttp2 refuses it before this.
    } else if (n == "cookie") {
      if (!r.cookie.empty()) r.cookie += "; ";
      r.cookie += v;
    } else {
      if (n == "host" && !r.host) r.host = std::string(v);
      if (n == "content-length") {
        std::uint64_t length = 0;
        if (parse_length(v, length)) r.content_length = length;  // nghttp2 checked the form
      }
      r.headers.emplace_back(std::string(n), std::string(v));
    }
    return 0;
  }

  static int on_data_chunk(nghttp2_session*, std::uint8_t, std::int32_t id,
                           const std::uint8_t* data, std::size_t length, void* user) {
    H2Connection& c = self(user);
    Stream* s = c.find(id);
    // An answered request's body, or a refused stream's: dropped.
    if (s == nullptr || s->dispatched || s->refused) return 0;
    H2Request& r = s->request;
    r.saw_data = true;
    s->last_input = Clock::now();
    if (r.body.size() + length > c.limits_.max_body_bytes) {
      r.body_too_large = true;
      c.uncount_body(*s);
      r.body.clear();
      r.body.shrink_to_fit();
      c.dispatch(id, *s);
      return 0;
    }
    if (c.buffered_body_ + length > c.limits_.max_buffered_body_bytes) {
      // The connection holds enough bodies already: this stream goes, the others stay.
      c.uncount_body(*s);
      r.body.clear();
      r.body.shrink_to_fit();
      s->refused = true;
      ++c.refused_streams_;
      nghttp2_submit_rst_stream(c.session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
      return 0;
    }
    c.buffered_body_ += length;
    s->body_counted += length;
    r.body.append(reinterpret_cast<const char*>(data), length);
    return 0;
  }

  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    H2Connection& c = self(user);
    const std::int32_t id = frame->hd.stream_id;
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS: {
        Stream* s = c.find(id);
        if (s == nullptr) return 0;
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
          s->headers_done = true;
          s->headers_at = Clock::now();
          // Like HTTP/1.1's max_requests_per_connection: then a graceful GOAWAY.
          if (c.requests_ >= c.limits_.max_requests) c.shut_down();
          H2Request& r = s->request;
          if (r.content_length && *r.content_length > c.limits_.max_body_bytes) {
            r.body_too_large = true;
          }
          if (r.header_too_large || r.body_too_large) {
            c.dispatch(id, *s);
            return 0;
          }
        }
        if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0 && !s->dispatched) c.dispatch(id, *s);
        return 0;
      }
      case NGHTTP2_DATA: {
        Stream* s = c.find(id);
        if (s != nullptr && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0 && !s->dispatched &&
            !s->refused) {
          c.dispatch(id, *s);
        }
        return 0;
      }
      case NGHTTP2_RST_STREAM: {
        Stream* s = c.find(id);
        if (s == nullptr || s->response_ended) return 0;
        s->reset_by_client = true;
        ++c.client_resets_;
        // Rapid reset: each reset costs the edge a stream setup and maybe upstream work.
        const auto now = Clock::now();
        const double elapsed = std::chrono::duration<double>(now - c.reset_refill_).count();
        c.reset_refill_ = now;
        c.reset_tokens_ = std::min<double>(c.limits_.reset_burst,
                                           c.reset_tokens_ + elapsed * c.limits_.resets_per_second);
        if (c.reset_tokens_ < 1.0) {
          c.trip(H2Defence::kRapidReset);
          return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        c.reset_tokens_ -= 1.0;
        return 0;
      }
      default:
        return 0;
    }
  }

  static int on_frame_send(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
    H2Connection& c = self(user);
    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) {
      return 0;
    }
    Stream* s = c.find(frame->hd.stream_id);
    if (s == nullptr) return 0;
    s->response_ended = true;
    if (s->reset_after_response) {
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                NGHTTP2_NO_ERROR);
    }
    return 0;
  }

  static int on_stream_close(nghttp2_session*, std::int32_t id, std::uint32_t error_code,
                             void* user) {
    H2Connection& c = self(user);
    auto it = c.streams_.find(id);
    if (it == c.streams_.end()) return 0;
    const bool by_client = it->second.reset_by_client;
    const std::uint64_t sent = it->second.sent;
    const bool dispatched = it->second.dispatched;
    c.uncount_body(it->second);  // a dispatched stream's body counts until its response ends
    c.streams_.erase(it);
    if (dispatched) c.handler_.on_stream_close(id, error_code, by_client, sent);
    return 0;
  }

  static ssize_t read_body(nghttp2_session*, std::int32_t id, std::uint8_t* buf,
                           std::size_t length, std::uint32_t* flags, nghttp2_data_source*,
                           void* user) {
    H2Connection& c = self(user);
    Stream* s = c.find(id);
    if (s == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    const std::size_t available = s->out.size() - s->out_offset;
    if (available == 0) {
      if (s->out_end) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return 0;
      }
      s->deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    const std::size_t n = std::min(length, available);
    std::memcpy(buf, s->out.data() + s->out_offset, n);
    s->out_offset += n;
    s->sent += n;
    if (s->out_offset == s->out.size()) {
      s->out.clear();
      s->out_offset = 0;
      if (s->out_end) *flags |= NGHTTP2_DATA_FLAG_EOF;
    } else if (s->out_offset > 64 * 1024 && s->out_offset * 2 > s->out.size()) {
      s->out.erase(0, s->out_offset);
      s->out_offset = 0;
    }
    c.handler_.on_response_drained(id);
    return static_cast<ssize_t>(n);
  }
};

H2Connection::H2Connection(const H2Limits& limits, H2Handler& handler)
    : limits_(limits), handler_(handler) {
  reset_tokens_ = limits_.reset_burst;
  reset_refill_ = settings_window_ = ping_window_ = Clock::now();
  nghttp2_session_callbacks* cb = nullptr;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_begin_frame_callback(cb, Callbacks::on_begin_frame);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, Callbacks::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, Callbacks::on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, Callbacks::on_data_chunk);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, Callbacks::on_frame_recv);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, Callbacks::on_frame_send);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, Callbacks::on_stream_close);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  // The library's own flood guards, as a second line behind the counts above.
  nghttp2_option_set_max_outbound_ack(opt, limits_.max_outbound_ack);
  nghttp2_option_set_max_settings(opt, 16);
  nghttp2_option_set_max_continuations(opt, limits_.max_continuations);
  nghttp2_option_set_stream_reset_rate_limit(opt, limits_.reset_burst * 2ULL,
                                             limits_.resets_per_second * 2ULL);
  nghttp2_option_set_no_closed_streams(opt, 1);  // no priority tree: nothing kept after close
  nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
  nghttp2_session_server_new2(&session_, cb, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits_.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, limits_.initial_window_size},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
       static_cast<std::uint32_t>(limits_.max_header_list_bytes)},
      {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  // The connection window: enough for a few request bodies in flight at once.
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<std::int32_t>(4 * limits_.initial_window_size));
}

H2Connection::~H2Connection() { nghttp2_session_del(session_); }

H2Connection::Stream* H2Connection::find(std::int32_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : &it->second;
}

void H2Connection::uncount_body(Stream& s) {
  buffered_body_ -= s.body_counted;
  s.body_counted = 0;
}

void H2Connection::dispatch(std::int32_t id, Stream& s) {
  s.dispatched = true;
  if ((s.request.body_too_large && !s.request.content_length) || s.request.header_too_large) {
    // Answered before the request ended: the rest of it is not wanted. With a Content-Length
    // the rest is bounded (nghttp2 holds DATA to it) and dropped as it comes, since some clients
    // (curl 7.88) take a RST_STREAM(NO_ERROR) while they still send as a failure.
    s.reset_after_response = true;
  }
  H2Request request = std::move(s.request);
  request.id = id;
  handler_.on_request(std::move(request));
}

bool H2Connection::count_per_second(std::uint32_t& count, Clock::time_point& window,
                                    std::uint32_t max) {
  const auto now = Clock::now();
  if (now - window >= std::chrono::seconds(1)) {
    window = now;
    count = 0;
  }
  return ++count <= max;
}

bool H2Connection::trip(H2Defence d) {
  if (defence_ == H2Defence::kNone) defence_ = d;
  return false;
}

bool H2Connection::receive(std::string_view bytes) {
  const ssize_t n = nghttp2_session_mem_recv(
      session_, reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  if (n >= 0) return defence_ == H2Defence::kNone;
  if (n == NGHTTP2_ERR_FLOODED) trip(H2Defence::kAckFlood);
  if (n == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) trip(H2Defence::kContinuationFlood);
  if (defence_ == H2Defence::kNone) defence_ = H2Defence::kProtocolError;
  const std::uint32_t code =
      defence_ == H2Defence::kProtocolError ? NGHTTP2_PROTOCOL_ERROR : NGHTTP2_ENHANCE_YOUR_CALM;
  nghttp2_session_terminate_session(session_, code);
  return false;
}

bool H2Connection::send(std::string& out, std::size_t max) {
  while (out.size() < max) {
    const std::uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) return false;
    if (n == 0) break;
    out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
  }
  return true;
}

bool H2Connection::want_read() const { return nghttp2_session_want_read(session_) != 0; }
bool H2Connection::want_write() const { return nghttp2_session_want_write(session_) != 0; }

void H2Connection::submit_response(
    std::int32_t id, int status,
    std::span<const std::pair<std::string_view, std::string_view>> headers, bool end_stream) {
  Stream* s = find(id);
  if (s == nullptr || s->response_started) return;
  s->response_started = true;
  const std::string status_text = std::to_string(status);
  std::vector<nghttp2_nv> nva;
  nva.reserve(headers.size() + 1);
  auto nv = [](std::string_view name, std::string_view value) {
    return nghttp2_nv{reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
                      reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())),
                      name.size(), value.size(), NGHTTP2_NV_FLAG_NONE};
  };
  nva.push_back(nv(":status", status_text));
  for (const auto& [name, value] : headers) nva.push_back(nv(name, value));
  nghttp2_data_provider provider{};
  provider.read_callback = Callbacks::read_body;
  nghttp2_submit_response(session_, id, nva.data(), nva.size(), end_stream ? nullptr : &provider);
}

void H2Connection::append_body(std::int32_t id, std::string_view bytes, bool end) {
  Stream* s = find(id);
  if (s == nullptr) return;
  s->out.append(bytes);
  s->out_end = s->out_end || end;
  if (s->deferred) {
    s->deferred = false;
    nghttp2_session_resume_data(session_, id);
  }
}

std::size_t H2Connection::buffered(std::int32_t id) const {
  auto it = streams_.find(id);
  return it == streams_.end() ? 0 : it->second.out.size() - it->second.out_offset;
}

void H2Connection::reset_after_response(std::int32_t id) {
  if (Stream* s = find(id)) s->reset_after_response = true;
}

void H2Connection::reset_stream(std::int32_t id, std::uint32_t error_code) {
  if (find(id) != nullptr) nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, error_code);
}

void H2Connection::shut_down() {
  if (shutting_down_) return;
  shutting_down_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
}

void H2Connection::terminate(std::uint32_t error_code) {
  shutting_down_ = true;
  nghttp2_session_terminate_session(session_, error_code);
}

}  // namespace moat::edge
