// The host's HTTP/1.1 server on Boost.Beast: ServerCore (listening, accepting, the route table, stop)
// and the HttpServer facade over it. How the objects own each other is described in
// http_server_internal.hpp; a connection is in http_connection.cpp, the plugin's side of an exchange
// in http_exchange.cpp.
#include <algorithm>
#include <set>
#include <stdexcept>

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include "http_server_internal.hpp"

namespace chorus::host::http_internal {

// ------------------------------------------------------------------------------------------------
// Helpers the other parts use too (declared in http_server_internal.hpp)

namespace {

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

}  // namespace

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!is_token_char(c)) return false;
  }
  return true;
}

std::string format_endpoint(const tcp::endpoint &ep) {
  const std::string ip = ep.address().to_string();
  const std::string port = std::to_string(ep.port());
  return ep.address().is_v6() ? "[" + ip + "]:" + port : ip + ":" + port;
}

// ------------------------------------------------------------------------------------------------
// ServerCore implementation

namespace {

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

}  // namespace

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

}  // namespace chorus::host::http_internal

namespace chorus::host {

using namespace http_internal;

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

}  // namespace chorus::host
