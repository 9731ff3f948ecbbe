// What the parts of the HTTP server (http_server.cpp, http_connection.cpp, http_exchange.cpp) share
// and nothing else includes: the exchange, the route table entries, ServerCore and Connection.
//
// http_server.cpp: ServerCore (listening, accepting, the route table, stop) and HttpServer.
// http_connection.cpp: one connection on its strand (read, dispatch, write in order, close).
// http_exchange.cpp: the plugin side of an exchange (the C ABI calls, from any thread) and its
//   cancellation.
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
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>

#include "http_server.hpp"

namespace chorus::host::http_internal {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr const char *kServerName = "chorus-agent";

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
inline thread_local const OwnerState *tl_owner_in_handler = nullptr;

}  // namespace chorus::host::http_internal

// Opaque in the C header. Everything below `mu` is guarded by it.
struct chorus_http_exchange {
  enum class Phase { kNew, kStreaming, kDone };  // what the plugin has done so far

  chorus_http_exchange(chorus::host::http_internal::ExchangeRegistry *r,
                       std::shared_ptr<chorus::host::http_internal::OwnerState> o,
                       std::shared_ptr<chorus::host::http_internal::Connection> c)
      : registry(r), owner(std::move(o)), conn(std::move(c)) {}

  std::atomic<int> refs{2};  // the connection's and the plugin's
  // Valid as long as this exchange exists: the registry frees the exchanges the plugin still holds
  // when it is destroyed, and everything holding a connection reference keeps the registry alive.
  chorus::host::http_internal::ExchangeRegistry *const registry;
  const std::shared_ptr<chorus::host::http_internal::OwnerState> owner;
  std::atomic<size_t> queued_bytes{0};  // stream data posted but not yet written

  std::mutex mu;
  Phase phase = Phase::kNew;
  bool cancelled = false;
  // Where to post writes; null once nothing more will be sent (finished or cancelled).
  std::shared_ptr<chorus::host::http_internal::Connection> conn;
};

namespace chorus::host::http_internal {

inline void unref(chorus_http_exchange *ex) {
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
// Helpers of more than one part

// Beast in Boost 1.74 speaks boost::string_view; the rest of the host speaks std::string_view.
inline std::string_view sv(beast::string_view s) { return {s.data(), s.size()}; }
inline beast::string_view bsv(std::string_view s) { return {s.data(), s.size()}; }

// In http_server.cpp.
bool is_token(std::string_view s);  // an HTTP token (RFC 9110): methods, header names
std::string format_endpoint(const tcp::endpoint &ep);

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

}  // namespace chorus::host::http_internal
