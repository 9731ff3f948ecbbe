// The host's HTTP/1.1 server on Boost.Beast.
//
// Objects and who owns them:
//  - ServerCore (the real HttpServer::Impl) holds the acceptor, the route table and the registry of
//    exchanges. Every Connection and every pending accept holds a shared_ptr to it, so it outlives
//    the HttpServer object until the io_context has let go of the last completion handler.
//  - Connection: one TCP connection, driven entirely on its own strand. It reads one request at a
//    time, hands it to a handler and writes what the plugin sends back through the exchange, in the
//    order the plugin sent it. Completion handlers keep it alive with shared_from_this().
//  - chorus_http_exchange: one request/response, shared by the connection and the plugin with an
//    intrusive reference count (one reference each). The plugin's reference is returned by its
//    finishing call (respond or stream_end); the connection's when the exchange is over on the wire.
//    The plugin may call from any thread, so its calls lock the exchange and post work to the
//    connection's strand; posting while holding that lock keeps the plugin's writes in call order.
//
// Cancellation: when the client disconnects, the server stops or the owner's routes are removed,
// the exchange is marked cancelled under its lock. From then on the plugin's calls return
// CHORUS_E_CANCELLED and queue nothing; the connection answers 503 (nothing sent yet) or cuts the
// stream, and closes.
//
// Reference cycle to keep in mind: an unfinished exchange points to its connection (to post writes)
// and the connection to its current exchange. Finishing, cancelling or closing breaks it, and stop()
// cancels every unfinished exchange synchronously, so it is broken even if the io_context never runs
// again.
#include "http_server.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <limits>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace chorus::host {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr const char *kServerName = "chorus-agent";
// A stream whose client reads slower than the plugin writes is refused more data past this.
constexpr size_t kMaxQueuedStreamBytes = 8u << 20;
// After an error answer that closes the connection we read and discard what the client still sends
// for at most this long: closing a socket with unread input makes the kernel send RST, which can
// destroy the answer before the client read it.
constexpr std::chrono::milliseconds kLingerTime{2000};
constexpr size_t kLingerBytes = 1u << 20;
constexpr size_t kIdleReadBytes = 4096;

class Connection;
class ExchangeRegistry;

// Bookkeeping per route owner, for remove_routes(): how many of its handlers are running now.
struct OwnerState {
  explicit OwnerState(std::string n) : name(std::move(n)) {}
  const std::string name;
  int running = 0;       // guarded by ServerCore::route_mu
  bool removed = false;  // guarded by ServerCore::route_mu
};

struct Route {
  std::string method;  // "*" = any
  std::string path;
  bool prefix = false;
  std::shared_ptr<OwnerState> owner;
  HttpServer::Handler handler;
};

// One thing for the connection to send. Items of an exchange are queued and written in order.
struct Outgoing {
  enum class Kind {
    kWhole,  // a complete response (final)
    kHead,   // status line and headers of a streamed response
    kChunk,  // one piece of a streamed body
    kLast,   // end of a streamed body (final)
    kAbort,  // cut a started stream short: close without the terminating chunk (final)
  };
  explicit Outgoing(Kind k) : kind(k) {}
  Kind kind;
  std::unique_ptr<http::response<http::string_body>> whole;
  std::unique_ptr<http::response<http::empty_body>> head;
  std::unique_ptr<http::response_serializer<http::empty_body>> head_serializer;
  std::string data;
};

// The owner whose handler this thread is running, so remove_routes() called from inside that
// handler does not wait for itself.
thread_local const OwnerState *tl_owner_in_handler = nullptr;

}  // namespace
}  // namespace chorus::host

// Opaque in the C header. Everything below `mu` is guarded by it.
struct chorus_http_exchange {
  enum class Phase { kNew, kStreaming, kDone };  // what the plugin has done so far

  chorus_http_exchange(chorus::host::ExchangeRegistry *r,
                       std::shared_ptr<chorus::host::OwnerState> o,
                       std::shared_ptr<chorus::host::Connection> c)
      : registry(r), owner(std::move(o)), conn(std::move(c)) {}

  std::atomic<int> refs{2};  // the connection's and the plugin's
  // Valid as long as this exchange exists: the registry frees the exchanges the plugin still holds
  // when it is destroyed, and everything holding a connection reference keeps the registry alive.
  chorus::host::ExchangeRegistry *const registry;
  const std::shared_ptr<chorus::host::OwnerState> owner;
  std::atomic<size_t> queued_bytes{0};  // stream data posted but not yet written

  std::mutex mu;
  Phase phase = Phase::kNew;
  bool cancelled = false;
  // Where to post writes; null once nothing more will be sent (finished or cancelled).
  std::shared_ptr<chorus::host::Connection> conn;
};

namespace chorus::host {
namespace {

void unref(chorus_http_exchange *ex) {
  if (ex->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete ex;
}

// An owning reference (intrusive_ptr-like) used on the server side.
class ExchangeRef {
 public:
  ExchangeRef() = default;
  static ExchangeRef adopt(chorus_http_exchange *ex) { return ExchangeRef(ex); }
  static ExchangeRef share(chorus_http_exchange *ex) {
    ex->refs.fetch_add(1, std::memory_order_relaxed);
    return ExchangeRef(ex);
  }
  ExchangeRef(const ExchangeRef &o) : ex_(o.ex_) {
    if (ex_ != nullptr) ex_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  ExchangeRef(ExchangeRef &&o) noexcept : ex_(std::exchange(o.ex_, nullptr)) {}
  ExchangeRef &operator=(ExchangeRef o) noexcept {
    std::swap(ex_, o.ex_);
    return *this;
  }
  ~ExchangeRef() { reset(); }
  void reset() {
    if (ex_ != nullptr) unref(std::exchange(ex_, nullptr));
  }
  chorus_http_exchange *get() const { return ex_; }
  chorus_http_exchange *operator->() const { return ex_; }
  explicit operator bool() const { return ex_ != nullptr; }

 private:
  explicit ExchangeRef(chorus_http_exchange *ex) : ex_(ex) {}
  chorus_http_exchange *ex_ = nullptr;
};

// The exchanges whose plugin reference is still out (the plugin has not finished them). stop() and
// remove_routes() find the exchanges to cancel here.
class ExchangeRegistry {
 public:
  ExchangeRegistry() = default;
  ExchangeRegistry(const ExchangeRegistry &) = delete;
  ExchangeRegistry &operator=(const ExchangeRegistry &) = delete;
  // Only the plugin references are left by now (connections keep the server, and so us, alive).
  ~ExchangeRegistry() {
    for (chorus_http_exchange *ex : held_) unref(ex);
  }

  void add(chorus_http_exchange *ex) {
    std::lock_guard lock(mu_);
    held_.insert(ex);
  }
  // Drops the plugin's reference; `ex` may be gone afterwards.
  void plugin_finished(chorus_http_exchange *ex) {
    {
      std::lock_guard lock(mu_);
      held_.erase(ex);
    }
    unref(ex);
  }
  // References to the unfinished exchanges of `owner` (all of them for nullptr).
  std::vector<ExchangeRef> unfinished(const OwnerState *owner) {
    std::vector<ExchangeRef> out;
    std::lock_guard lock(mu_);
    for (chorus_http_exchange *ex : held_) {
      if (owner == nullptr || ex->owner.get() == owner) out.push_back(ExchangeRef::share(ex));
    }
    return out;
  }

 private:
  std::mutex mu_;
  std::unordered_set<chorus_http_exchange *> held_;
};

// ------------------------------------------------------------------------------------------------
// Small helpers

// Beast in Boost 1.74 speaks boost::string_view; the rest of the host speaks std::string_view.
std::string_view sv(beast::string_view s) { return {s.data(), s.size()}; }
beast::string_view bsv(std::string_view s) { return {s.data(), s.size()}; }

bool is_token_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!is_token_char(c)) return false;
  }
  return true;
}

// Header values must not smuggle in line breaks (response splitting) or other control characters.
bool is_field_value(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return false;
  }
  return true;
}

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

std::string format_endpoint(const tcp::endpoint &ep) {
  const std::string ip = ep.address().to_string();
  const std::string port = std::to_string(ep.port());
  return ep.address().is_v6() ? "[" + ip + "]:" + port : ip + ":" + port;
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

// Copies the plugin's headers; false if one is malformed or is one the host manages.
template <class Message>
bool add_plugin_headers(Message &msg, const char *content_type, const chorus_http_header *headers,
                        size_t count) {
  const std::string_view type = content_type != nullptr ? content_type : "application/octet-stream";
  if (type.empty() || !is_field_value(type)) return false;
  msg.set(http::field::server, kServerName);
  msg.set(http::field::content_type, bsv(type));
  for (size_t i = 0; i < count; ++i) {
    const chorus_http_header &h = headers[i];
    if (h.name == nullptr || (h.value == nullptr && h.value_len > 0)) return false;
    const std::string_view name(h.name, h.name_len);
    const std::string_view value(h.value != nullptr ? h.value : "", h.value_len);
    if (!is_token(name) || !is_field_value(value)) return false;
    for (const char *managed : {"content-type", "content-length", "transfer-encoding", "connection"}) {
      if (beast::iequals(bsv(name), managed)) return false;
    }
    msg.insert(bsv(name), bsv(value));
  }
  return true;
}

// ------------------------------------------------------------------------------------------------
// ServerCore

class ServerCore : public std::enable_shared_from_this<ServerCore> {
 public:
  ServerCore(net::io_context &io_context, HttpLimits l)
      : io(io_context), limits(l), acceptor_(io_context), retry_timer_(io_context) {}

  void listen(const std::string &address);
  std::string local_address() const {
    std::lock_guard lock(acceptor_mu_);
    return local_address_;
  }
  void stop();
  bool wait_closed(std::chrono::milliseconds grace);

  bool add_route(const std::string &method, const std::string &path, bool prefix,
                 const std::string &owner, HttpServer::Handler handler, std::string *conflict_owner,
                 const std::string &replaceable_owner);
  void remove_routes(const std::string &owner);

  // Finds the route for a request. On success the owner's running count has been raised and the
  // caller must call handler_returned() once the handler is done. Otherwise *allow lists the methods
  // the path accepts (empty: unknown path).
  std::shared_ptr<const Route> find_route(std::string_view method, std::string_view path,
                                          std::string *allow);
  void handler_returned(OwnerState &owner);

  void set_observer(HttpServer::Observer observer) {
    auto shared = std::make_shared<const HttpServer::Observer>(std::move(observer));
    std::lock_guard lock(observer_mu_);
    observer_ = std::move(shared);
  }
  void observe(std::string_view method, std::string_view route, int status, double seconds) {
    std::shared_ptr<const HttpServer::Observer> observer;
    {
      std::lock_guard lock(observer_mu_);
      observer = observer_;
    }
    if (!observer || !*observer) return;
    try {
      (*observer)(method, route, status, seconds);
    } catch (...) {
      // Metrics must never break serving.
    }
  }

  // Called when the connection's socket closes and again from its destructor (a connection whose
  // socket never closed, because the io_context stopped first).
  void unregister_connection(Connection *c) {
    {
      std::lock_guard lock(conn_mu_);
      if (connections_.erase(c) == 0) return;
    }
    conn_cv_.notify_all();
  }

  net::io_context &io;
  const HttpLimits limits;
  std::atomic<bool> stopped{false};
  ExchangeRegistry exchanges;

 private:
  void accept_next();  // needs acceptor_mu_
  void on_accept(beast::error_code ec, tcp::socket socket);

  // The acceptor is touched by the accept handler (worker thread) and by listen()/stop() (control
  // thread), so a mutex serialises them.
  mutable std::mutex acceptor_mu_;
  tcp::acceptor acceptor_;
  net::steady_timer retry_timer_;  // backs off when accept fails (e.g. out of file descriptors)
  std::string local_address_;

  std::mutex route_mu_;
  std::condition_variable route_cv_;  // signalled when a removed owner's handler returns
  using RouteList = std::vector<std::shared_ptr<const Route>>;
  std::map<std::string, RouteList, std::less<>> exact_;
  std::map<std::string, RouteList, std::less<>> prefix_;
  std::map<std::string, std::shared_ptr<OwnerState>, std::less<>> owners_;

  std::mutex conn_mu_;
  std::condition_variable conn_cv_;  // signalled when a connection leaves connections_
  std::unordered_map<Connection *, std::weak_ptr<Connection>> connections_;  // sockets still open

  std::mutex observer_mu_;
  std::shared_ptr<const HttpServer::Observer> observer_;
};

// Marks `ex` cancelled (unless the plugin already finished it) and has its connection answer
// `status`. Any thread.
void cancel_exchange(chorus_http_exchange *ex, int status);

// ------------------------------------------------------------------------------------------------
// Connection

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<ServerCore> core, tcp::socket socket)
      : core_(std::move(core)), executor_(socket.get_executor()), stream_(std::move(socket)) {}

  ~Connection() {
    if (current_) {
      // Only reached without a running io_context (stop, then the io_context went away): whatever
      // the plugin still does with the exchange is a no-op.
      std::lock_guard lock(current_->mu);
      current_->cancelled = true;
    }
    core_->unregister_connection(this);
  }

  // The connection's strand; copying it is safe from any thread.
  const net::any_io_executor &executor() const { return executor_; }

  // Everything below runs on the strand.
  void start() {
    beast::error_code ec;
    const auto ep = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_ = format_endpoint(ep);
    stream_.socket().set_option(tcp::no_delay(true), ec);  // streamed chunks should leave at once
    // Only affects synchronous calls: lets watch_client() peek without ever blocking the thread.
    stream_.socket().non_blocking(true, ec);
    read_request();
  }

  void deliver(chorus_http_exchange *ex, std::unique_ptr<Outgoing> out);
  void abort_exchange(chorus_http_exchange *ex, int status);
  void server_stop();

 private:
  void read_request();
  void read_message();
  void on_header(beast::error_code ec);
  void on_read(beast::error_code ec);
  void dispatch();
  void run_handler(std::shared_ptr<const Route> route, std::string_view path, std::string_view query);
  void send_host_answer(std::unique_ptr<Outgoing> out, bool close);
  void write_next();
  void on_write(beast::error_code ec);
  void finish_exchange();
  void complete(int status);
  void client_gone();
  void watch_client();
  void linger_close();
  void drain();
  void close_socket();

  const std::shared_ptr<ServerCore> core_;
  const net::any_io_executor executor_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::empty_body>> continue_;  // "100 Continue" being written
  std::string remote_;
  unsigned requests_ = 0;
  bool closing_ = false;  // server stop: no further requests
  bool closed_ = false;
  bool watching_ = false;  // a wait for client activity is pending
  bool writing_ = false;
  std::deque<std::unique_ptr<Outgoing>> out_;
  std::array<char, 4096> drain_buf_{};
  size_t drained_ = 0;

  // The exchange in flight (one at a time; HTTP/1.1 answers in request order).
  bool active_ = false;
  ExchangeRef current_;  // null for the host's own answers (404, 413, ...)
  std::string method_;
  std::string route_;
  Clock::time_point started_;
  int status_ = 0;
  unsigned version_ = 11;
  bool close_after_ = false;
  bool head_queued_ = false;
  bool final_queued_ = false;
  bool chunked_ = true;
};

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

// ------------------------------------------------------------------------------------------------
// Exchange operations (any thread)

void cancel_exchange(chorus_http_exchange *ex, int status) {
  std::shared_ptr<Connection> conn;
  {
    std::lock_guard lock(ex->mu);
    if (ex->cancelled || ex->phase == chorus_http_exchange::Phase::kDone) return;
    ex->cancelled = true;
    conn = std::move(ex->conn);
  }
  if (!conn) return;
  // Posted after everything the plugin posted before the cancel (it happened under the same lock).
  net::post(conn->executor(), [conn, ref = ExchangeRef::share(ex), status] {
    conn->abort_exchange(ref.get(), status);
  });
}

enum class Action { kRespond, kBegin, kWrite, kEnd };

// The plugin-side state machine. `out` (may be null) is posted to the connection if still wanted.
chorus_status submit(chorus_http_exchange *ex, Action action, std::unique_ptr<Outgoing> out) {
  using Phase = chorus_http_exchange::Phase;
  chorus_status rc = CHORUS_OK;
  bool finished = false;
  {
    std::lock_guard lock(ex->mu);
    switch (action) {
      case Action::kRespond:
        if (ex->phase != Phase::kNew) return CHORUS_E_INVALID_ARG;
        break;
      case Action::kBegin:
        if (ex->phase != Phase::kNew) return CHORUS_E_INVALID_ARG;
        ex->phase = Phase::kStreaming;
        break;
      case Action::kWrite:
        if (ex->phase != Phase::kStreaming) return CHORUS_E_INVALID_ARG;
        break;
      case Action::kEnd:
        if (ex->phase != Phase::kStreaming) return CHORUS_E_INVALID_ARG;
        break;
    }
    if (action == Action::kWrite && !ex->cancelled && out) {
      // One big write alone is always accepted; only piling more on top of a backlog is refused.
      const size_t queued = ex->queued_bytes.load(std::memory_order_relaxed);
      if (queued > 0 && queued + out->data.size() > kMaxQueuedStreamBytes) return CHORUS_E_BUSY;
      ex->queued_bytes.fetch_add(out->data.size(), std::memory_order_relaxed);
    }
    if (action == Action::kRespond || action == Action::kEnd) {
      ex->phase = Phase::kDone;
      finished = true;
    }
    if (ex->cancelled || !ex->conn) {
      rc = CHORUS_E_CANCELLED;
    } else if (out) {
      // Posting under the lock keeps concurrent writers' data in the order their calls took it.
      auto conn = ex->conn;
      net::post(conn->executor(), [conn, ref = ExchangeRef::share(ex), o = std::move(out)]() mutable {
        conn->deliver(ref.get(), std::move(o));
      });
    }
    if (finished) ex->conn.reset();  // nothing more to send: drop the connection reference
  }
  if (finished) ex->registry->plugin_finished(ex);  // `ex` may be freed here
  return rc;
}

template <typename F>
chorus_status guarded(F &&f) noexcept {
  try {
    return f();
  } catch (const std::bad_alloc &) {
    return CHORUS_E_NO_MEMORY;
  } catch (...) {
    return CHORUS_E_INTERNAL;
  }
}

bool valid_status(int32_t status) { return status >= 200 && status <= 599; }
bool bodyless_status(int32_t status) { return status == 204 || status == 304; }

// ------------------------------------------------------------------------------------------------
// ServerCore implementation

tcp::endpoint parse_listen_address(const std::string &address) {
  auto fail = [&](const std::string &why) {
    return std::runtime_error("http listen " + address + ": " + why);
  };
  std::string host;
  std::string port;
  if (!address.empty() && address.front() == '[') {
    const size_t close = address.find(']');
    if (close == std::string::npos || close + 1 >= address.size() || address[close + 1] != ':') {
      throw fail("expected [ip6]:port");
    }
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {
    const size_t colon = address.rfind(':');
    if (colon == std::string::npos) throw fail("expected ip:port");
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
    if (host.find(':') != std::string::npos) throw fail("IPv6 addresses need brackets: [ip6]:port");
  }
  beast::error_code ec;
  const auto ip = net::ip::make_address(host, ec);
  if (ec || host.empty()) throw fail("invalid IP address '" + host + "'");
  unsigned long value = 0;
  size_t used = 0;
  try {
    value = std::stoul(port, &used);
  } catch (...) {
    used = 0;
  }
  if (port.empty() || used != port.size() || value > 65535 || port.front() == '-' ||
      port.front() == '+') {
    throw fail("invalid port '" + port + "'");
  }
  return tcp::endpoint(ip, static_cast<unsigned short>(value));
}

void ServerCore::listen(const std::string &address) {
  const tcp::endpoint ep = parse_listen_address(address);
  std::lock_guard lock(acceptor_mu_);
  auto fail = [&](const std::string &why) {
    beast::error_code ignored;
    acceptor_.close(ignored);
    return std::runtime_error("http listen " + address + ": " + why);
  };
  if (acceptor_.is_open()) throw std::runtime_error("http listen " + address + ": already listening");
  if (stopped.load()) throw std::runtime_error("http listen " + address + ": server stopped");
  beast::error_code ec;
  acceptor_.open(ep.protocol(), ec);
  if (ec) throw fail(ec.message());
  acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (ec) throw fail(ec.message());
  acceptor_.bind(ep, ec);
  if (ec) throw fail(ec.message());
  acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) throw fail(ec.message());
  const auto local = acceptor_.local_endpoint(ec);
  if (ec) throw fail(ec.message());
  local_address_ = format_endpoint(local);
  accept_next();
}

void ServerCore::accept_next() {
  // Each connection gets its own strand: its handlers never run concurrently with each other.
  acceptor_.async_accept(net::make_strand(io),
                         [self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
                           self->on_accept(ec, std::move(socket));
                         });
}

void ServerCore::on_accept(beast::error_code ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted || stopped.load()) return;
  if (!ec) {
    std::shared_ptr<Connection> conn;
    {
      std::lock_guard lock(conn_mu_);
      if (connections_.size() < limits.max_connections) {
        conn = std::make_shared<Connection>(shared_from_this(), std::move(socket));
        connections_.emplace(conn.get(), conn);
      }
    }
    // Over the limit the socket is closed right here, when it goes out of scope.
    if (conn) net::post(conn->executor(), [conn] { conn->start(); });
  }
  std::lock_guard lock(acceptor_mu_);
  if (!acceptor_.is_open() || stopped.load()) return;
  if (!ec) {
    accept_next();
    return;
  }
  // Accept errors such as EMFILE repeat at once; pause instead of spinning.
  retry_timer_.expires_after(std::chrono::milliseconds(100));
  retry_timer_.async_wait([self = shared_from_this()](beast::error_code wait_ec) {
    if (wait_ec) return;
    std::lock_guard lock(self->acceptor_mu_);
    if (self->acceptor_.is_open() && !self->stopped.load()) self->accept_next();
  });
}

void ServerCore::stop() {
  if (stopped.exchange(true)) return;
  {
    std::lock_guard lock(acceptor_mu_);
    beast::error_code ec;
    acceptor_.close(ec);
    retry_timer_.cancel();
  }
  // Synchronously: from here on the plugins' calls are no-ops, even if the io_context never runs
  // again (this also breaks the exchange <-> connection reference cycles).
  for (const ExchangeRef &ex : exchanges.unfinished(nullptr)) cancel_exchange(ex.get(), 503);
  std::vector<std::shared_ptr<Connection>> conns;
  {
    std::lock_guard lock(conn_mu_);
    for (auto &[ptr, weak] : connections_) {
      if (auto c = weak.lock()) conns.push_back(std::move(c));
    }
  }
  for (auto &c : conns) net::post(c->executor(), [c] { c->server_stop(); });
}

bool ServerCore::wait_closed(std::chrono::milliseconds grace) {
  std::unique_lock lock(conn_mu_);
  return conn_cv_.wait_for(lock, grace, [this] { return connections_.empty(); });
}

bool ServerCore::add_route(const std::string &method, const std::string &path, bool prefix,
                           const std::string &owner, HttpServer::Handler handler,
                           std::string *conflict_owner, const std::string &replaceable_owner) {
  if (method != "*" && !is_token(method)) {
    throw std::invalid_argument("invalid HTTP method '" + method + "'");
  }
  if (path.empty() || path.front() != '/') {
    throw std::invalid_argument("route path '" + path + "' must start with '/'");
  }
  for (char c : path) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '?' || c == '#') {
      throw std::invalid_argument("route path '" + path + "' contains an invalid character");
    }
  }
  if (prefix && path.back() != '/') {
    throw std::invalid_argument("prefix route '" + path + "' must end in '/'");
  }
  if (!handler) throw std::invalid_argument("route " + path + " has no handler");

  std::lock_guard lock(route_mu_);
  RouteList &list = (prefix ? prefix_ : exact_)[path];
  auto &state = owners_[owner];
  if (!state) state = std::make_shared<OwnerState>(owner);
  auto route = std::make_shared<Route>();
  route->method = method;
  route->path = path;
  route->prefix = prefix;
  route->owner = state;
  route->handler = std::move(handler);
  for (auto &r : list) {
    if (r->method == method || r->method == "*" || method == "*") {
      // A hot-swapped successor takes over its predecessor's route in place: new requests go to
      // the new handler, exchanges already running stay with the old owner until they finish.
      if (!replaceable_owner.empty() && r->owner->name == replaceable_owner && r->method == method) {
        r = std::move(route);
        return true;
      }
      if (conflict_owner != nullptr) *conflict_owner = r->owner->name;
      return false;
    }
  }
  list.push_back(std::move(route));
  return true;
}

void ServerCore::remove_routes(const std::string &owner) {
  std::shared_ptr<OwnerState> state;
  {
    std::unique_lock lock(route_mu_);
    const auto it = owners_.find(owner);
    if (it == owners_.end()) return;
    state = it->second;
    owners_.erase(it);
    state->removed = true;
    for (auto *table : {&exact_, &prefix_}) {
      for (auto entry = table->begin(); entry != table->end();) {
        std::erase_if(entry->second, [&](const auto &r) { return r->owner == state; });
        entry = entry->second.empty() ? table->erase(entry) : std::next(entry);
      }
    }
    // Wait for the owner's running handlers, except the one calling us (if it is one of them).
    const int own = tl_owner_in_handler == state.get() ? 1 : 0;
    route_cv_.wait(lock, [&] { return state->running <= own; });
  }
  // Every exchange the owner's handlers created is registered by now.
  for (const ExchangeRef &ex : exchanges.unfinished(state.get())) cancel_exchange(ex.get(), 503);
}

std::shared_ptr<const Route> ServerCore::find_route(std::string_view method, std::string_view path,
                                                    std::string *allow) {
  std::lock_guard lock(route_mu_);
  // Exact routes first, then prefixes from the longest: "/a/b/c" tries "/a/b/", "/a/", "/".
  std::vector<const RouteList *> candidates;
  if (const auto it = exact_.find(path); it != exact_.end()) candidates.push_back(&it->second);
  for (size_t n = path.size(); n > 0; --n) {
    if (path[n - 1] != '/') continue;
    if (const auto it = prefix_.find(path.substr(0, n)); it != prefix_.end()) {
      candidates.push_back(&it->second);
    }
  }
  for (const RouteList *list : candidates) {
    for (const auto &r : *list) {
      if (r->method == "*" || r->method == method) {
        ++r->owner->running;
        return r;
      }
    }
  }
  std::set<std::string_view> methods;
  for (const RouteList *list : candidates) {
    for (const auto &r : *list) methods.insert(r->method);
  }
  allow->clear();
  for (std::string_view m : methods) {
    if (!allow->empty()) *allow += ", ";
    *allow += m;
  }
  return nullptr;
}

void ServerCore::handler_returned(OwnerState &owner) {
  std::lock_guard lock(route_mu_);
  --owner.running;
  if (owner.removed) route_cv_.notify_all();
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// HttpServer

struct HttpServer::Impl final : ServerCore {
  using ServerCore::ServerCore;
};

HttpServer::HttpServer(boost::asio::io_context &io, HttpLimits limits)
    : impl_(std::make_shared<Impl>(io, limits)) {}

HttpServer::~HttpServer() { impl_->stop(); }

void HttpServer::listen(const std::string &address) { impl_->listen(address); }
std::string HttpServer::local_address() const { return impl_->local_address(); }
void HttpServer::stop() { impl_->stop(); }

bool HttpServer::stop(std::chrono::milliseconds grace) {
  impl_->stop();
  return impl_->wait_closed(grace);
}

bool HttpServer::add_route(const std::string &method, const std::string &path, bool prefix,
                           const std::string &owner, Handler handler, std::string *conflict_owner,
                           const std::string &replaceable_owner) {
  return impl_->add_route(method, path, prefix, owner, std::move(handler), conflict_owner, replaceable_owner);
}

void HttpServer::remove_routes(const std::string &owner) { impl_->remove_routes(owner); }
void HttpServer::set_observer(Observer observer) { impl_->set_observer(std::move(observer)); }

chorus_status HttpServer::respond(chorus_http_exchange *ex, int32_t status, const char *content_type,
                                  const chorus_http_header *headers, size_t header_count,
                                  const char *body, size_t body_len) {
  return guarded([&]() -> chorus_status {
    if (ex == nullptr || !valid_status(status) || (body == nullptr && body_len > 0) ||
        (headers == nullptr && header_count > 0) || (bodyless_status(status) && body_len > 0)) {
      return CHORUS_E_INVALID_ARG;
    }
    auto out = std::make_unique<Outgoing>(Outgoing::Kind::kWhole);
    out->whole = std::make_unique<http::response<http::string_body>>();
    auto &res = *out->whole;
    res.result(static_cast<unsigned>(status));
    if (!add_plugin_headers(res, content_type, headers, header_count)) return CHORUS_E_INVALID_ARG;
    if (body_len > 0) res.body().assign(body, body_len);
    if (!bodyless_status(status)) res.content_length(body_len);
    return submit(ex, Action::kRespond, std::move(out));
  });
}

chorus_status HttpServer::stream_begin(chorus_http_exchange *ex, int32_t status,
                                       const char *content_type, const chorus_http_header *headers,
                                       size_t header_count) {
  return guarded([&]() -> chorus_status {
    if (ex == nullptr || !valid_status(status) || bodyless_status(status) ||
        (headers == nullptr && header_count > 0)) {
      return CHORUS_E_INVALID_ARG;
    }
    auto out = std::make_unique<Outgoing>(Outgoing::Kind::kHead);
    out->head = std::make_unique<http::response<http::empty_body>>();
    out->head->result(static_cast<unsigned>(status));
    if (!add_plugin_headers(*out->head, content_type, headers, header_count)) {
      return CHORUS_E_INVALID_ARG;
    }
    return submit(ex, Action::kBegin, std::move(out));
  });
}

chorus_status HttpServer::stream_write(chorus_http_exchange *ex, const char *data, size_t len) {
  return guarded([&]() -> chorus_status {
    if (ex == nullptr || (data == nullptr && len > 0)) return CHORUS_E_INVALID_ARG;
    std::unique_ptr<Outgoing> out;
    if (len > 0) {  // an empty chunk would end the chunked body, so it is simply not sent
      out = std::make_unique<Outgoing>(Outgoing::Kind::kChunk);
      out->data.assign(data, len);
    }
    return submit(ex, Action::kWrite, std::move(out));
  });
}

chorus_status HttpServer::stream_end(chorus_http_exchange *ex) {
  return guarded([&]() -> chorus_status {
    if (ex == nullptr) return CHORUS_E_INVALID_ARG;
    return submit(ex, Action::kEnd, std::make_unique<Outgoing>(Outgoing::Kind::kLast));
  });
}

}  // namespace chorus::host
