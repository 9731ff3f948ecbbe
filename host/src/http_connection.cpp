// One HTTP connection, driven on its own strand: reads a request, hands it to the route's handler,
// writes the answer in the order the plugin sent it, notices a client that hung up, and closes
// gracefully. Split from http_server.cpp to keep each file short; the shared types are in
// http_server_internal.hpp.
#include <algorithm>
#include <cstdint>
#include <limits>

#include <boost/asio/buffer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include "http_server_internal.hpp"

namespace chorus::host::http_internal {
namespace {

// After an error answer that closes the connection we read and discard what the client still sends
// for at most this long: closing a socket with unread input makes the kernel send RST, which can
// destroy the answer before the client read it.
constexpr std::chrono::milliseconds kLingerTime{2000};
constexpr size_t kLingerBytes = 1u << 20;
constexpr size_t kIdleReadBytes = 4096;

std::string json_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          static const char *hex = "0123456789abcdef";
          out += "\\u00";
          out += hex[(c >> 4) & 0xf];
          out += hex[c & 0xf];
        } else {
          out += c;
        }
    }
  }
  return out;
}

// The host's own answers: {"error": "..."} as application/json.
std::unique_ptr<Outgoing> error_response(int status, std::string_view message) {
  auto out = std::make_unique<Outgoing>(Outgoing::Kind::kWhole);
  out->whole = std::make_unique<http::response<http::string_body>>();
  auto &res = *out->whole;
  res.result(static_cast<unsigned>(status));
  res.set(http::field::server, kServerName);
  res.set(http::field::content_type, "application/json");
  res.body() = "{\"error\":\"" + json_escape(message) + "\"}";
  res.prepare_payload();
  return out;
}

}  // namespace

void Connection::read_request() {
  if (closed_) return;
  if (closing_) {
    close_socket();
    return;
  }
  version_ = 11;
  parser_.emplace();
  parser_->body_limit(core_->limits.max_body_bytes);
  parser_->header_limit(static_cast<std::uint32_t>(
      std::min<size_t>(core_->limits.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
  if (requests_ == 0 || buffer_.size() > 0) {
    read_message();
    return;
  }
  // A kept-alive connection between requests: wait for the first byte under the idle limit, then
  // give the rest of the request the (shorter) read limit.
  stream_.expires_after(core_->limits.idle_timeout);
  stream_.async_read_some(buffer_.prepare(kIdleReadBytes),
                          [self = shared_from_this()](beast::error_code ec, size_t n) {
                            if (ec) {
                              self->close_socket();  // idle timeout, client closed, server stop
                              return;
                            }
                            self->buffer_.commit(n);
                            self->read_message();
                          });
}

void Connection::read_message() {
  stream_.expires_after(core_->limits.read_timeout);
  http::async_read_header(stream_, buffer_, *parser_,
                          [self = shared_from_this()](beast::error_code ec, size_t) {
                            self->on_header(ec);
                          });
}

void Connection::on_header(beast::error_code ec) {
  if (ec || parser_->is_done()) {
    on_read(ec);
    return;
  }
  const auto &req = parser_->get();
  const auto read_body = [self = shared_from_this()] {
    http::async_read(self->stream_, self->buffer_, *self->parser_,
                     [self](beast::error_code ec, size_t) { self->on_read(ec); });
  };
  // curl and others wait (about a second) for "100 Continue" before sending a larger body.
  if (req.version() >= 11 && beast::iequals(req[http::field::expect], "100-continue")) {
    continue_.emplace(http::status::continue_, req.version());
    http::async_write(stream_, *continue_,
                      [self = shared_from_this(), read_body](beast::error_code ec, size_t) {
                        self->continue_.reset();
                        if (ec) {
                          self->close_socket();
                          return;
                        }
                        read_body();
                      });
    return;
  }
  read_body();
}

void Connection::on_read(beast::error_code ec) {
  if (closed_) return;
  if (ec) {
    // Parse errors are answered; network errors, timeouts and a client that hung up are not.
    const bool http_error = ec.category() == http::make_error_code(http::error::bad_method).category();
    if (!http_error || ec == http::error::end_of_stream || ec == http::error::partial_message ||
        closing_) {
      close_socket();
      return;
    }
    int status = 400;
    const char *message = "malformed request";
    if (ec == http::error::body_limit) {
      status = 413;
      message = "request body too large";
    } else if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      status = 431;
      message = "request header too large";
    }
    // Whatever of the start line was parsed (the method is known for 413, often for 431).
    method_ = std::string(sv(parser_->get().method_string()));
    send_host_answer(error_response(status, message), /*close=*/true);
    return;
  }
  ++requests_;
  try {
    dispatch();
  } catch (...) {
    // Out of memory or similar while setting up the exchange: nothing sensible to answer.
    close_socket();
  }
}

void Connection::dispatch() {
  const auto &req = parser_->get();
  method_ = std::string(req.method_string());
  route_.clear();
  version_ = req.version();
  close_after_ = !req.keep_alive() || closing_;

  const std::string_view target = sv(req.target());
  if (target.empty() || target.front() != '/') {
    send_host_answer(error_response(400, "request target must be an absolute path"), true);
    return;
  }
  const size_t q = target.find('?');
  const std::string_view path = target.substr(0, q);
  const std::string_view query = q == std::string_view::npos ? "" : target.substr(q + 1);

  if (core_->stopped.load()) {
    send_host_answer(error_response(503, "server stopping"), true);
    return;
  }
  std::string allow;
  auto route = core_->find_route(sv(req.method_string()), path, &allow);
  if (!route) {
    if (allow.empty()) {
      send_host_answer(error_response(404, "not found"), close_after_);
    } else {
      auto out = error_response(405, "method not allowed");
      out->whole->set(http::field::allow, allow);
      send_host_answer(std::move(out), close_after_);
    }
    return;
  }
  run_handler(std::move(route), path, query);
}

void Connection::run_handler(std::shared_ptr<const Route> route, std::string_view path,
                             std::string_view query) {
  // find_route() raised the owner's running count; lower it on every way out of here.
  struct Running {
    ServerCore &core;
    OwnerState &owner;
    const OwnerState *previous = tl_owner_in_handler;
    Running(ServerCore &c, OwnerState &o) : core(c), owner(o) { tl_owner_in_handler = &o; }
    ~Running() {
      tl_owner_in_handler = previous;
      core.handler_returned(owner);
    }
  } running(*core_, *route->owner);

  auto *ex = new chorus_http_exchange(&core_->exchanges, route->owner, shared_from_this());
  try {
    core_->exchanges.add(ex);  // the plugin's reference
  } catch (...) {
    delete ex;
    throw;
  }
  current_ = ExchangeRef::adopt(ex);  // the connection's reference
  active_ = true;
  route_ = route->path;
  started_ = Clock::now();
  status_ = 0;
  head_queued_ = final_queued_ = false;
  chunked_ = true;

  const auto &req = parser_->get();
  std::vector<chorus_http_header> headers;
  for (const auto &field : req) {
    const std::string_view name = sv(field.name_string());
    const std::string_view value = sv(field.value());
    headers.push_back({name.data(), name.size(), value.data(), value.size()});
  }
  const std::string_view method = sv(req.method_string());
  chorus_http_request r{};
  r.struct_size = sizeof r;
  r.header_count = static_cast<uint32_t>(headers.size());
  r.method = method.data();
  r.method_len = method.size();
  r.path = path.data();
  r.path_len = path.size();
  r.query = query.data();
  r.query_len = query.size();
  r.body = req.body().data();
  r.body_len = req.body().size();
  r.headers = headers.data();
  r.remote = remote_.c_str();
  r.remote_len = remote_.size();

  watch_client();
  try {
    route->handler(r, ex);
  } catch (...) {
    // A C++ host route threw. Answer 500 unless it already answered. The plugin reference stays
    // out (the handler may have passed `ex` on before throwing); the registry frees it at the end.
    cancel_exchange(ex, 500);
  }
}

// Answers from the host itself (404, 405, 413, ...): no exchange, no handler.
void Connection::send_host_answer(std::unique_ptr<Outgoing> out, bool close) {
  active_ = true;
  current_.reset();
  route_.clear();
  started_ = Clock::now();
  close_after_ = close || closing_;
  out->whole->version(version_ >= 10 && version_ <= 11 ? version_ : 11);
  out->whole->keep_alive(!close_after_);
  status_ = out->whole->result_int();
  head_queued_ = final_queued_ = true;
  out_.push_back(std::move(out));
  write_next();
}

void Connection::deliver(chorus_http_exchange *ex, std::unique_ptr<Outgoing> out) {
  if (closed_ || !active_ || current_.get() != ex || final_queued_) return;  // cancelled meanwhile
  switch (out->kind) {
    case Outgoing::Kind::kWhole:
      out->whole->version(version_);
      out->whole->keep_alive(!close_after_);
      status_ = out->whole->result_int();
      head_queued_ = final_queued_ = true;
      break;
    case Outgoing::Kind::kHead:
      out->head->version(version_);
      // HTTP/1.0 has no chunked encoding: the body then simply ends when the connection closes.
      chunked_ = version_ >= 11;
      if (!chunked_) close_after_ = true;
      out->head->chunked(chunked_);
      out->head->keep_alive(!close_after_);
      status_ = out->head->result_int();
      head_queued_ = true;
      break;
    case Outgoing::Kind::kChunk:
      break;
    case Outgoing::Kind::kLast:
    case Outgoing::Kind::kAbort:
      final_queued_ = true;
      break;
  }
  out_.push_back(std::move(out));
  write_next();
}

void Connection::abort_exchange(chorus_http_exchange *ex, int status) {
  if (closed_ || !active_ || current_.get() != ex || final_queued_) return;
  close_after_ = true;
  if (!head_queued_) {
    auto out = error_response(status, status == 500 ? "internal error" : "service unavailable");
    out->whole->version(version_);
    out->whole->keep_alive(false);
    status_ = status;
    head_queued_ = true;
    out_.push_back(std::move(out));
  } else {
    // The status line is out already: the client can only learn of it from a cut stream.
    out_.push_back(std::make_unique<Outgoing>(Outgoing::Kind::kAbort));
  }
  final_queued_ = true;
  write_next();
}

void Connection::server_stop() {
  closing_ = true;
  if (closed_) return;
  if (!active_) {
    close_socket();  // between requests (or lingering): nothing is owed to the client
    return;
  }
  close_after_ = true;
  // An exchange that started after stop() collected the unfinished ones is cancelled here.
  if (current_ && !final_queued_) cancel_exchange(current_.get(), 503);
  // Otherwise the answer under way is completed first; finish_exchange() then closes.
}

void Connection::write_next() {
  if (writing_ || closed_ || out_.empty()) return;
  Outgoing &o = *out_.front();
  if (o.kind == Outgoing::Kind::kAbort || (o.kind == Outgoing::Kind::kLast && !chunked_)) {
    out_.pop_front();  // nothing to write: the connection's end is the message's end
    close_after_ = true;
    finish_exchange();
    return;
  }
  writing_ = true;
  stream_.expires_after(core_->limits.write_timeout);
  auto done = [self = shared_from_this()](beast::error_code ec, size_t) { self->on_write(ec); };
  switch (o.kind) {
    case Outgoing::Kind::kWhole:
      http::async_write(stream_, *o.whole, std::move(done));
      break;
    case Outgoing::Kind::kHead:
      o.head_serializer = std::make_unique<http::response_serializer<http::empty_body>>(*o.head);
      http::async_write_header(stream_, *o.head_serializer, std::move(done));
      break;
    case Outgoing::Kind::kChunk:
      if (chunked_) {
        net::async_write(stream_, http::make_chunk(net::buffer(o.data)), std::move(done));
      } else {
        net::async_write(stream_, net::buffer(o.data), std::move(done));
      }
      break;
    case Outgoing::Kind::kLast:
      net::async_write(stream_, http::make_chunk_last(), std::move(done));
      break;
    case Outgoing::Kind::kAbort:
      break;  // handled above
  }
}

void Connection::on_write(beast::error_code ec) {
  writing_ = false;
  if (closed_) {
    out_.clear();  // safe now: no write refers to the queued buffers any more
    return;
  }
  if (ec) {
    client_gone();  // reset, broken pipe, or the write timed out
    return;
  }
  std::unique_ptr<Outgoing> done = std::move(out_.front());
  out_.pop_front();
  if (done->kind == Outgoing::Kind::kChunk && current_) {
    current_->queued_bytes.fetch_sub(done->data.size(), std::memory_order_relaxed);
  }
  if (done->kind == Outgoing::Kind::kWhole || done->kind == Outgoing::Kind::kLast) {
    finish_exchange();
    return;
  }
  write_next();
}

// The final piece is on the wire (or the stream was cut): report it and go on with the next request.
void Connection::finish_exchange() {
  complete(status_);
  if (close_after_ || closing_) {
    linger_close();
  } else {
    read_request();
  }
}

void Connection::complete(int status) {
  if (!active_) return;
  active_ = false;
  if (current_) {
    {
      std::lock_guard lock(current_->mu);
      current_->conn.reset();  // normally done already by the plugin's last call or the cancel
    }
    current_.reset();
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - started_).count();
  core_->observe(method_, route_, status, seconds);
}

void Connection::client_gone() {
  if (active_ && current_) {
    std::lock_guard lock(current_->mu);
    current_->cancelled = true;
    current_->conn.reset();
  }
  // 499 (as nginx logs it): the client closed the connection before it got an answer.
  complete(head_queued_ && status_ != 0 ? status_ : 499);
  close_socket();
}

// While a handler works on a request nothing is read, so a client that hangs up would go unnoticed
// until the first write fails. Waiting for readability notices it at once (EOF).
//
// The wait may outlive its exchange (it cannot be cancelled alone) and wake up later, after the
// request that made the socket readable was already read. So readability alone proves nothing: a
// non-blocking peek tells EOF (gone), data (a pipelined request) and nothing (stale: wait again).
void Connection::watch_client() {
  if (watching_ || closed_) return;
  watching_ = true;
  stream_.socket().async_wait(tcp::socket::wait_read, [self = shared_from_this()](
                                                          beast::error_code ec) {
    self->watching_ = false;
    if (ec || self->closed_ || !self->active_ || !self->current_) return;
    char byte;
    beast::error_code peek_ec;
    self->stream_.socket().receive(net::buffer(&byte, 1), tcp::socket::message_peek, peek_ec);
    if (peek_ec == net::error::would_block || peek_ec == net::error::try_again) {
      self->watch_client();
    } else if (peek_ec) {
      self->client_gone();  // EOF or reset
    }
    // Otherwise the client pipelined its next request. It is read after this exchange; until then
    // a disconnect shows as a failed write.
  });
}

void Connection::linger_close() {
  if (closed_) return;
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (ec || closing_) {
    close_socket();
    return;
  }
  stream_.expires_after(std::min<std::chrono::milliseconds>(core_->limits.read_timeout, kLingerTime));
  drained_ = 0;
  drain();
}

void Connection::drain() {
  stream_.async_read_some(net::buffer(drain_buf_),
                          [self = shared_from_this()](beast::error_code ec, size_t n) {
                            self->drained_ += n;
                            if (ec || self->closed_ || self->closing_ ||
                                self->drained_ > kLingerBytes) {
                              self->close_socket();
                              return;
                            }
                            self->drain();
                          });
}

void Connection::close_socket() {
  if (closed_) return;
  closed_ = true;
  if (active_) {
    if (current_) {
      std::lock_guard lock(current_->mu);
      current_->cancelled = true;
      current_->conn.reset();
    }
    complete(head_queued_ && status_ != 0 ? status_ : 499);
  }
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream_.close();
  // A write in progress still refers to the front item; on_write() clears the queue then.
  if (!writing_) out_.clear();
  core_->unregister_connection(this);
}

}  // namespace chorus::host::http_internal
