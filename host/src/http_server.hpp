// The host's HTTP/1.1 listener (Boost.Beast): host routes (/health..., /metrics, /plugins) and routes
// mounted by plugins through the C ABI. Handlers run on the worker io_context; a plugin may finish an
// exchange later from any thread, whole or streamed (chunked).
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "chorus/plugin.h"

namespace boost::asio { class io_context; }

namespace chorus::host {

struct HttpLimits {
  size_t max_body_bytes = 1 << 20;
  size_t max_header_bytes = 16 << 10;
  std::chrono::milliseconds read_timeout{30000};  // whole request must arrive within this (slowloris)
  std::chrono::milliseconds idle_timeout{60000};  // keep-alive connection idle limit
  size_t max_connections = 1024;                  // further accepts are closed at once
  std::chrono::milliseconds write_timeout{30000}; // one write stalled this long (client not reading) closes
};

class HttpServer {
 public:
  // Called on a worker thread with a borrowed request; must eventually finish `ex` via the ABI
  // functions below (respond, or stream_begin/write/end).
  using Handler = std::function<void(const chorus_http_request &, chorus_http_exchange *)>;
  // Called once per finished exchange, for metrics. `route` is the matched pattern ("" = no route).
  using Observer = std::function<void(std::string_view method, std::string_view route, int status,
                                      double seconds)>;

  HttpServer(boost::asio::io_context &io, HttpLimits limits = {});
  ~HttpServer();
  HttpServer(const HttpServer &) = delete;
  HttpServer &operator=(const HttpServer &) = delete;

  // Binds "ip:port" (IPv4) or "[ip6]:port"; port 0 picks a free one. Throws std::runtime_error
  // naming the address and the reason.
  void listen(const std::string &address);
  std::string local_address() const;  // "127.0.0.1:43117" after listen
  // Stops accepting, closes connections; exchanges still held by plugins become no-ops that return
  // CHORUS_E_CANCELLED. Safe to call twice.
  void stop();
  // stop(), then waits up to `grace` until the answers under way (including the 503s of cancelled
  // exchanges) are written and every connection is closed, so that stopping the io_context right
  // after loses no answer. Needs the io_context running. False when connections were still open.
  bool stop(std::chrono::milliseconds grace);

  // method "*" = any. prefix routes must end in '/'. Returns false and sets *conflict_owner when an
  // overlapping route (same path and kind, methods equal or either "*") exists. Throws
  // std::invalid_argument for a malformed method or path (path must start with '/', no '?', no
  // control characters or spaces) or an empty handler.
  // replaceable_owner: a route of that owner with the same path, kind and method is taken over
  // instead of conflicting (a hot-swapped plugin instance succeeding its predecessor).
  bool add_route(const std::string &method, const std::string &path, bool prefix,
                 const std::string &owner, Handler handler, std::string *conflict_owner,
                 const std::string &replaceable_owner = {});
  // Removes every route of `owner`. On return no handler of that owner is running or will run.
  // Exchanges of that owner still unfinished are answered 503 and turned into no-ops.
  void remove_routes(const std::string &owner);
  void set_observer(Observer observer);

  // The C ABI entry points for chorus_host_api (thread-safe, any thread).
  //  - status must be 200..599 (no body for 204/304); content_type NULL = application/octet-stream;
  //    headers must not set Content-Type, Content-Length, Transfer-Encoding or Connection (the host
  //    manages those); names must be tokens, values free of control characters. Else INVALID_ARG.
  //  - Once the exchange is cancelled (client gone, stop, remove_routes, handler threw) every call
  //    returns CHORUS_E_CANCELLED. The exchange is still valid then and the plugin still finishes it
  //    (respond, or stream_end after stream_begin); that call releases it. Exchanges a plugin never
  //    finishes are freed with the server.
  //  - stream_write returns CHORUS_E_BUSY (nothing queued) when earlier writes still wait for a slow
  //    client and this one would make the backlog exceed 8 MiB.
  //  - Client gone before any answer is reported to the observer as status 499.
  static chorus_status respond(chorus_http_exchange *ex, int32_t status, const char *content_type,
                               const chorus_http_header *headers, size_t header_count,
                               const char *body, size_t body_len);
  static chorus_status stream_begin(chorus_http_exchange *ex, int32_t status,
                                    const char *content_type, const chorus_http_header *headers,
                                    size_t header_count);
  static chorus_status stream_write(chorus_http_exchange *ex, const char *data, size_t len);
  static chorus_status stream_end(chorus_http_exchange *ex);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace chorus::host
