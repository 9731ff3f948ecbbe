// The engine over Boost.Beast: HTTP/1.1, and HTTPS through OpenSSL, on one asio thread.
//
// It replaced a libcurl multi engine. libcurl brought its whole dependency tree into every agent
// (gnutls, p11-kit, kerberos, ldap, ssh2, rtmp, nghttp2, ...): about 3 MiB of resident memory per
// agent for the two protocols used here (docs/benchmarks.md, "Per-agent footprint"). What libcurl did
// that a provider relies on is kept: connect, first-byte and total timeouts; the proxy environment
// (http_proxy, https_proxy, no_proxy); certificate and host name verification; keep-alive connections
// reused per origin, and a request retried once on a fresh connection when a reused one turns out to be
// closed before any answer came.
#include "ai_common/http_engine.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <openssl/evp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <limits>
#include <map>
#include <mutex>
#include <optional>

#include <poll.h>
#include <thread>
#include <unordered_map>

namespace chorus::ai_common {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

const char *outcome_name(TransferOutcome o) noexcept {
  switch (o) {
    case TransferOutcome::ok: return "ok";
    case TransferOutcome::connect_failed: return "connect_failed";
    case TransferOutcome::connect_timeout: return "connect_timeout";
    case TransferOutcome::first_byte_timeout: return "first_byte_timeout";
    case TransferOutcome::total_timeout: return "total_timeout";
    case TransferOutcome::too_large: return "too_large";
    case TransferOutcome::aborted: return "aborted";
    case TransferOutcome::io_error: return "io_error";
    case TransferOutcome::cancelled: return "cancelled";
  }
  return "unknown";
}

namespace {

uint64_t mono_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char &c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// %XX escapes decoded (user info in a URL, as curl takes it); false on a malformed escape.
bool percent_decode(std::string_view in, std::string *out) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      *out += in[i];
      continue;
    }
    const int hi = i + 1 < in.size() ? hex(in[i + 1]) : -1, lo = i + 2 < in.size() ? hex(in[i + 2]) : -1;
    if (hi < 0 || lo < 0) return false;
    *out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return true;
}

std::string base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(out.data()), reinterpret_cast<const unsigned char *>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

struct Url {
  std::string scheme;  // "http" or "https"
  std::string host;    // without the brackets of an IPv6 literal
  std::string port;
  std::string target;  // path and query, at least "/"
  std::string basic;   // "user:password" from the URL's user info, percent-decoded; empty if none

  // The host as it appears in a URL: an IPv6 literal in brackets.
  std::string bracketed_host() const { return host.find(':') != std::string::npos ? "[" + host + "]" : host; }
  std::string authority() const { return bracketed_host() + ":" + port; }
};

// scheme://host[:port][/path][?query][#fragment], the schemes http and https. Anything else is refused
// with the reason in *why.
std::optional<Url> parse_url(std::string_view s, bool proxy, std::string *why) {
  Url u;
  const size_t sep = s.find("://");
  if (sep == std::string_view::npos) {
    if (!proxy) {
      *why = "URL without a scheme: " + std::string(s);
      return std::nullopt;
    }
    u.scheme = "http";  // a proxy is often given as host:port
  } else {
    u.scheme = lower(s.substr(0, sep));
    s.remove_prefix(sep + 3);
  }
  if (proxy ? u.scheme != "http" : u.scheme != "http" && u.scheme != "https") {
    *why = proxy ? "unsupported proxy protocol '" + u.scheme + "' (only http:// proxies)"
                 : "unsupported protocol '" + u.scheme + "'";
    return std::nullopt;
  }
  const size_t end = s.find_first_of("/?#");
  std::string_view authority = s.substr(0, end);
  std::string_view rest = end == std::string_view::npos ? std::string_view{} : s.substr(end);
  if (const size_t hash = rest.find('#'); hash != std::string_view::npos) rest = rest.substr(0, hash);
  u.target = rest.empty() ? "/" : rest.front() == '?' ? "/" + std::string(rest) : std::string(rest);
  if (std::any_of(u.target.begin(), u.target.end(), [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; })) {
    *why = "the URL's path or query holds a space or a control character (percent-encode it)";
    return std::nullopt;
  }
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) {
    if (!percent_decode(authority.substr(0, at), &u.basic)) {
      *why = "bad percent-encoding in the URL's user info";
      return std::nullopt;
    }
    authority.remove_prefix(at + 1);
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      *why = "unterminated IPv6 address in URL";
      return std::nullopt;
    }
    u.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        *why = "bad URL authority '" + std::string(authority) + "'";
        return std::nullopt;
      }
      port = after.substr(1);
    }
  } else if (const size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    u.host = std::string(authority.substr(0, colon));
    port = authority.substr(colon + 1);
  } else {
    u.host = std::string(authority);
  }
  if (u.host.empty()) {
    *why = "URL without a host: " + std::string(s);
    return std::nullopt;
  }
  if (port.empty()) {
    u.port = u.scheme == "https" ? "443" : "80";
  } else {
    const bool digits = port.size() <= 5 && std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
    const int number = digits ? std::atoi(std::string(port).c_str()) : 0;
    if (number < 1 || number > 65535) {
      *why = "bad port '" + std::string(port) + "' in URL";
      return std::nullopt;
    }
    u.port = std::string(port);
  }
  return u;
}

const char *env(const char *name) {
  const char *v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : nullptr;
}

// no_proxy: "*", or a comma-separated list of host names (each also matching its subdomains) and
// addresses, as curl reads it.
bool bypasses_proxy(const std::string &host) {
  const char *list = env("no_proxy");
  if (list == nullptr) list = env("NO_PROXY");
  if (list == nullptr) return false;
  const std::string h = lower(host);
  std::string_view rest(list);
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (item == "*") return true;
    if (!item.empty() && item.front() == '.') item.remove_prefix(1);
    if (item.empty()) continue;
    const std::string entry = lower(item);
    if (h == entry) return true;
    if (h.size() > entry.size() && h.compare(h.size() - entry.size(), entry.size(), entry) == 0 &&
        h[h.size() - entry.size() - 1] == '.')
      return true;
  }
  return false;
}

// The proxy for a URL from the environment, as curl chooses it: http_proxy (lower case only, as a CGI
// environment can set HTTP_PROXY from a request header) for http, https_proxy or HTTPS_PROXY for
// https, then all_proxy or ALL_PROXY.
const char *proxy_setting(const Url &u) {
  const char *p = u.scheme == "https" ? (env("https_proxy") ? env("https_proxy") : env("HTTPS_PROXY")) : env("http_proxy");
  if (p == nullptr) p = env("all_proxy") ? env("all_proxy") : env("ALL_PROXY");
  if (p == nullptr || bypasses_proxy(u.host)) return nullptr;
  return p;
}

}  // namespace

struct HttpEngine::Impl {
  // Idle keep-alive connections kept per origin: at most this many in all, for at most this long.
  static constexpr size_t kMaxIdle = 16;
  static constexpr uint64_t kIdleMs = 30000;

  // A connection on the heap, so that it can outlive its transfer in the idle pool and the TLS stream's
  // reference to the socket stays valid.
  struct Connection {
    explicit Connection(asio::io_context &io) : socket(io) {}
    tcp::socket socket;
    std::unique_ptr<asio::ssl::stream<tcp::socket &>> tls;  // after socket: refers to it
    uint64_t idle_since_ms = 0;
  };

  struct Transfer {
    uint64_t id = 0;
    TransferSpec spec;
    std::shared_ptr<TransferHandler> handler;
    Url url;
    std::optional<Url> proxy;
    std::string origin;  // the idle pool's key: scheme, authority and the proxy it goes through
    tcp::resolver resolver;
    std::unique_ptr<Connection> conn;
    bool reused = false;  // conn came from the idle pool
    asio::steady_timer deadline;
    uint64_t started_ms = 0;
    uint64_t connect_started_ms = 0;  // this connection attempt's (a retry starts a new one)
    bool connected = false;  // TCP, proxy tunnel and TLS handshake done: the connect timeout is over
    bool got_first_byte = false;
    bool finished = false;
    size_t received = 0;
    long status = 0;
    std::string retry_after;
    boost::beast::flat_buffer buffer;
    http::request<http::string_body> request;
    std::optional<http::response_parser<http::empty_body>> tunnel;  // the proxy's answer to CONNECT
    std::optional<http::response_parser<http::buffer_body>> response;
    char chunk[16384];

    explicit Transfer(asio::io_context &io) : resolver(io), deadline(io) {}
  };
  using TransferPtr = std::shared_ptr<Transfer>;

  std::string name;
  asio::io_context io{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;
  std::atomic<std::thread::id> thread_id{};
  mutable std::mutex mu;
  bool accepting = false;          // guarded by mu
  bool stopping = false;           // guarded by mu: post() refuses other threads from here on
  std::atomic<bool> draining{false};  // the engine thread is cancelling everything
  // Engine thread only:
  std::unique_ptr<asio::ssl::context> tls_context;  // made at the first https transfer
  std::unordered_map<uint64_t, TransferPtr> transfers;
  std::multimap<std::string, std::unique_ptr<Connection>> idle;  // origin -> connection
  std::map<uint64_t, std::pair<std::unique_ptr<asio::steady_timer>, std::function<void(bool)>>> timed;
  uint64_t next_id = 1;
  uint64_t next_timed = 1;

  bool on_thread() const { return std::this_thread::get_id() == thread_id.load(); }

  // --- delayed tasks -------------------------------------------------------------------------------

  void schedule(std::function<void(bool)> fn, std::chrono::steady_clock::time_point due) {
    if (draining) return fn(true);
    const uint64_t key = next_timed++;
    auto timer = std::make_unique<asio::steady_timer>(io, due);
    timer->async_wait([this, key](const error_code &) {
      auto it = timed.find(key);
      if (it == timed.end()) return;  // run by drain()
      auto fn = std::move(it->second.second);
      timed.erase(it);
      fn(draining.load());
    });
    timed.emplace(key, std::make_pair(std::move(timer), std::move(fn)));
  }

  // --- transfers -----------------------------------------------------------------------------------

  void finish(const TransferPtr &t, TransferResult r) {
    if (t->finished) return;
    t->finished = true;
    error_code ignored;
    t->deadline.cancel();
    t->resolver.cancel();
    if (t->conn) t->conn->socket.close(ignored);
    auto handler = std::move(t->handler);
    transfers.erase(t->id);
    handler->on_complete(r);
  }

  void fail(const TransferPtr &t, TransferOutcome outcome, std::string message) {
    finish(t, TransferResult{outcome, t->status, std::move(message), t->retry_after});
  }

  // One timer per transfer, armed for the earliest deadline still in force; on expiry it says which
  // one passed, or re-arms.
  void arm_deadline(const TransferPtr &t) {
    const TransferSpec &s = t->spec;
    uint64_t due = t->started_ms + s.total_timeout_ms;
    if (!t->connected) due = std::min(due, t->connect_started_ms + s.connect_timeout_ms);
    if (!t->got_first_byte) due = std::min(due, t->started_ms + s.first_byte_timeout_ms);
    const uint64_t now = mono_ms();
    t->deadline.expires_after(std::chrono::milliseconds(due > now ? due - now : 0));
    t->deadline.async_wait([this, t](const error_code &ec) {
      if (ec || t->finished) return;
      const TransferSpec &s = t->spec;
      const uint64_t now = mono_ms(), elapsed = now - t->started_ms;
      if (!t->connected && now - t->connect_started_ms >= s.connect_timeout_ms) {
        const Url &hop = t->proxy ? *t->proxy : t->url;
        return fail(t, TransferOutcome::connect_timeout,
                    "connection to " + hop.host + " port " + hop.port + " timed out after " +
                        std::to_string(s.connect_timeout_ms) + " ms");
      }
      if (!t->got_first_byte && elapsed >= s.first_byte_timeout_ms)
        return fail(t, TransferOutcome::first_byte_timeout,
                    "no answer within " + std::to_string(s.first_byte_timeout_ms) + " ms");
      if (elapsed >= s.total_timeout_ms)
        return fail(t, TransferOutcome::total_timeout,
                    "the transfer took more than " + std::to_string(s.total_timeout_ms) + " ms");
      arm_deadline(t);
    });
  }

  uint64_t submit(TransferSpec spec, std::shared_ptr<TransferHandler> handler) {
    const uint64_t id = next_id++;
    if (draining) {
      handler->on_complete(TransferResult{TransferOutcome::cancelled, 0, "engine stopping", {}});
      return id;
    }
    auto t = std::make_shared<Transfer>(io);
    t->id = id;
    t->spec = std::move(spec);
    t->handler = std::move(handler);
    t->started_ms = mono_ms();
    std::string why;
    // A bad URL completes from the loop, as every other failure does: the caller gets its id first.
    auto refuse = [this, &t](TransferOutcome o, std::string message) {
      asio::post(io, [h = std::move(t->handler), r = TransferResult{o, 0, std::move(message), {}}] { h->on_complete(r); });
    };
    auto url = parse_url(t->spec.url, false, &why);
    if (!url) {
      refuse(TransferOutcome::io_error, why);
      return id;
    }
    t->url = std::move(*url);
    if (const char *p = proxy_setting(t->url)) {
      t->proxy = parse_url(p, true, &why);
      if (!t->proxy) {
        refuse(TransferOutcome::connect_failed, "the proxy setting: " + why);
        return id;
      }
    }
    for (const auto &h : t->spec.headers)
      if (h.find_first_of("\r\n") != std::string::npos) {
        refuse(TransferOutcome::io_error, "a request header holds a line break");
        return id;
      }
    t->origin = t->url.scheme + "://" + t->url.authority() + (t->proxy ? " via " + t->proxy->authority() : "");
    transfers.emplace(id, t);
    t->connect_started_ms = t->started_ms;
    arm_deadline(t);
    if ((t->conn = take_idle(t->origin))) {
      t->reused = true;
      t->connected = true;
      send(t);
    } else {
      open(t);
    }
    return id;
  }

  // --- connections ---------------------------------------------------------------------------------

  // A pooled connection to origin that is still open, or null. A connection the server closed (or
  // wrote to unasked) reads as ready; it is dropped, as are those idle for longer than kIdleMs.
  std::unique_ptr<Connection> take_idle(const std::string &origin) {
    const uint64_t now = mono_ms();
    for (auto it = idle.find(origin); it != idle.end() && it->first == origin;) {
      std::unique_ptr<Connection> c = std::move(it->second);
      it = idle.erase(it);
      pollfd p{c->socket.native_handle(), POLLIN, 0};
      if (now - c->idle_since_ms <= kIdleMs && ::poll(&p, 1, 0) == 0) return c;
    }
    return nullptr;
  }

  // After a complete answer on a connection the server keeps open (and that holds no unread bytes).
  void give_back(const TransferPtr &t) {
    if (draining || !t->response->keep_alive() || t->buffer.size() != 0) return;
    const uint64_t now = mono_ms();
    for (auto it = idle.begin(); it != idle.end();)
      it = now - it->second->idle_since_ms > kIdleMs ? idle.erase(it) : std::next(it);
    if (idle.size() >= kMaxIdle)
      idle.erase(std::min_element(idle.begin(), idle.end(), [](const auto &a, const auto &b) {
        return a.second->idle_since_ms < b.second->idle_since_ms;
      }));
    t->conn->idle_since_ms = now;
    idle.emplace(t->origin, std::move(t->conn));
  }

  // A reused connection that failed before any answer byte was most likely closed by the server while it
  // sat idle: the request goes once more, on a new connection, as curl does.
  bool retry_on_fresh_connection(const TransferPtr &t) {
    if (!t->reused || t->got_first_byte || t->finished || draining) return false;
    error_code ignored;
    t->conn->socket.close(ignored);
    t->reused = false;
    t->connected = false;
    t->connect_started_ms = mono_ms();
    arm_deadline(t);
    t->buffer.clear();
    t->response.reset();
    // Not from inside the failed operation's handler: open() replaces the connection it ran on.
    asio::post(io, [this, t] {
      if (!t->finished) open(t);
    });
    return true;
  }

  void open(const TransferPtr &t) {
    t->conn = std::make_unique<Connection>(io);
    const Url &first_hop = t->proxy ? *t->proxy : t->url;
    t->resolver.async_resolve(first_hop.host, first_hop.port,
                              [this, t](const error_code &ec, const tcp::resolver::results_type &results) {
                                if (t->finished) return;
                                const Url &hop = t->proxy ? *t->proxy : t->url;
                                if (ec)
                                  return fail(t, TransferOutcome::connect_failed,
                                              "could not resolve host " + hop.host + ": " + ec.message());
                                connect(t, results);
                              });
  }

  void connect(const TransferPtr &t, const tcp::resolver::results_type &results) {
    asio::async_connect(t->conn->socket, results, [this, t](const error_code &ec, const tcp::endpoint &) {
      if (t->finished) return;
      const Url &hop = t->proxy ? *t->proxy : t->url;
      if (ec)
        return fail(t, TransferOutcome::connect_failed,
                    "failed to connect to " + hop.host + " port " + hop.port + ": " + ec.message());
      error_code ignored;
      t->conn->socket.set_option(tcp::no_delay(true), ignored);
      if (t->proxy && t->url.scheme == "https") return open_tunnel(t);
      if (t->url.scheme == "https") return handshake(t);
      t->connected = true;
      send(t);
    });
  }

  // HTTPS through an http:// proxy: CONNECT host:port, then TLS inside the tunnel.
  void open_tunnel(const TransferPtr &t) {
    auto req = std::make_shared<http::request<http::empty_body>>(http::verb::connect, t->url.authority(), 11);
    req->set(http::field::host, t->url.authority());
    if (!t->proxy->basic.empty()) req->set(http::field::proxy_authorization, "Basic " + base64(t->proxy->basic));
    http::async_write(t->conn->socket, *req, [this, t, req](const error_code &ec, size_t) {
      if (t->finished) return;
      if (ec) return fail(t, TransferOutcome::connect_failed, "the proxy " + t->proxy->host + ": " + ec.message());
      t->tunnel.emplace();
      t->tunnel->skip(true);  // a CONNECT answer has no body
      http::async_read_header(t->conn->socket, t->buffer, *t->tunnel, [this, t](const error_code &ec, size_t) {
        if (t->finished) return;
        if (ec) return fail(t, TransferOutcome::connect_failed, "the proxy " + t->proxy->host + ": " + ec.message());
        const unsigned code = t->tunnel->get().result_int();
        if (code / 100 != 2)
          return fail(t, TransferOutcome::connect_failed,
                      "the proxy " + t->proxy->host + " refused the tunnel to " + t->url.authority() + " (HTTP " +
                          std::to_string(code) + ")");
        if (t->buffer.size() != 0)
          return fail(t, TransferOutcome::connect_failed,
                      "the proxy " + t->proxy->host + " sent bytes after accepting the tunnel");
        handshake(t);
      });
    });
  }

  void handshake(const TransferPtr &t) {
    if (!tls_context) {
      tls_context = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
      error_code ignored;
      tls_context->set_default_verify_paths(ignored);  // the system's CAs; SSL_CERT_FILE/SSL_CERT_DIR decide
    }
    auto &tls = t->conn->tls;
    tls = std::make_unique<asio::ssl::stream<tcp::socket &>>(t->conn->socket, *tls_context);
    tls->set_verify_mode(asio::ssl::verify_peer);
    tls->set_verify_callback(asio::ssl::host_name_verification(t->url.host));
    error_code not_an_address;
    asio::ip::make_address(t->url.host, not_an_address);
    if (not_an_address) SSL_set_tlsext_host_name(tls->native_handle(), t->url.host.c_str());  // SNI
    tls->async_handshake(asio::ssl::stream_base::client, [this, t](const error_code &ec) {
      if (t->finished) return;
      if (ec) return fail(t, TransferOutcome::io_error, "TLS with " + t->url.host + " failed: " + ec.message());
      t->connected = true;
      send(t);
    });
  }

  // Runs f on the transfer's stream: TLS or the bare socket.
  template <class F>
  void on_stream(const TransferPtr &t, F &&f) {
    if (t->conn->tls)
      f(*t->conn->tls);
    else
      f(t->conn->socket);
  }

  void send(const TransferPtr &t) {
    const TransferSpec &s = t->spec;
    auto &req = t->request;
    req = {};
    req.version(11);
    req.method_string(s.method);
    // Through a proxy, plain http asks for the absolute URL.
    req.target(t->proxy && t->url.scheme == "http" ? "http://" + t->url.authority() + t->url.target : t->url.target);
    const bool default_port = t->url.port == (t->url.scheme == "https" ? "443" : "80");
    req.set(http::field::host, default_port ? t->url.bracketed_host() : t->url.authority());
    bool authorization = false;
    for (const auto &h : s.headers) {  // line breaks were refused in submit()
      const size_t colon = h.find(':');
      if (colon == std::string::npos || colon == 0) continue;
      std::string_view value(h);
      value.remove_prefix(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
      const boost::beast::string_view name(h.data(), colon);
      authorization = authorization || boost::beast::iequals(name, "authorization");
      req.insert(name, boost::beast::string_view(value.data(), value.size()));
    }
    if (!authorization && !t->url.basic.empty()) req.set(http::field::authorization, "Basic " + base64(t->url.basic));
    if (t->proxy && t->url.scheme == "http" && !t->proxy->basic.empty())
      req.set(http::field::proxy_authorization, "Basic " + base64(t->proxy->basic));
    if (s.method != "GET" || !s.body.empty()) {
      req.body() = s.body;
      req.prepare_payload();
    }
    on_stream(t, [this, t](auto &stream) {
      http::async_write(stream, t->request, [this, t](const error_code &ec, size_t) {
        if (t->finished) return;
        if (ec && retry_on_fresh_connection(t)) return;
        if (ec) return fail(t, TransferOutcome::io_error, "sending the request failed: " + ec.message());
        t->request = {};  // the body may be large
        read_header(t);
      });
    });
  }

  void read_header(const TransferPtr &t) {
    t->tunnel.reset();
    t->response.emplace();
    t->response->header_limit(64 * 1024);
    // Counted in read_body against max_response_bytes. Not boost::none: Boost 1.74 compares a
    // Content-Length with the empty limit as larger than it.
    t->response->body_limit(std::numeric_limits<std::uint64_t>::max());
    on_stream(t, [this, t](auto &stream) {
      http::async_read_header(stream, t->buffer, *t->response, [this, t](const error_code &ec, size_t) {
        if (t->finished) return;
        // Part of a header in the buffer means the server had begun to answer: no second request.
        if (ec && t->buffer.size() == 0 && retry_on_fresh_connection(t)) return;
        if (ec) return fail(t, TransferOutcome::io_error, "reading the answer failed: " + ec.message());
        t->got_first_byte = true;
        const auto &head = t->response->get();
        if (head.result_int() / 100 == 1) return read_header(t);  // 100 Continue, 103 Early Hints: the answer follows
        t->status = static_cast<long>(head.result_int());
        if (auto it = head.find(http::field::retry_after); it != head.end())
          t->retry_after.assign(it->value().data(), it->value().size());
        read_body(t);
      });
    });
  }

  void read_body(const TransferPtr &t) {
    if (t->response->is_done()) {
      give_back(t);
      return finish(t, TransferResult{TransferOutcome::ok, t->status, {}, t->retry_after});
    }
    auto &body = t->response->get().body();
    body.data = t->chunk;
    body.size = sizeof t->chunk;
    on_stream(t, [this, t](auto &stream) {
      http::async_read_some(stream, t->buffer, *t->response, [this, t](error_code ec, size_t) {
        if (t->finished) return;
        if (ec == http::error::need_buffer) ec = {};
        // A body that ends with the connection, over TLS from a server that closes without close_notify:
        // asio reports the truncation, Beast then never sees the end of the stream it waits for.
        if (ec == asio::ssl::error::stream_truncated && t->response->need_eof()) {
          error_code eof;
          t->response->put_eof(eof);
          if (!eof) ec = {};
        }
        const size_t n = sizeof t->chunk - t->response->get().body().size;
        if (n > 0) {
          t->received += n;
          if (t->received > t->spec.max_response_bytes)
            return fail(t, TransferOutcome::too_large,
                        "response larger than " + std::to_string(t->spec.max_response_bytes) + " bytes");
          if (!t->handler->on_data(t->status, std::string_view(t->chunk, n)))
            return fail(t, TransferOutcome::aborted, "aborted by the handler");
          if (t->finished) return;  // the handler cancelled it
        }
        if (ec)
          return fail(t, TransferOutcome::io_error, "the connection failed mid-answer: " + ec.message());
        read_body(t);
      });
    });
  }

  void cancel(uint64_t id, const char *why) {
    auto it = transfers.find(id);
    if (it == transfers.end()) return;
    TransferPtr t = it->second;
    fail(t, TransferOutcome::cancelled, why);
  }

  // On the engine thread, at stop: transfers complete cancelled, delayed tasks run cancelled, and so
  // does whatever they queue; then the thread's run() returns.
  void drain() {
    draining = true;
    idle.clear();
    while (!transfers.empty() || !timed.empty()) {
      while (!transfers.empty()) cancel(transfers.begin()->first, "engine stopping");
      while (!timed.empty()) {
        auto it = timed.begin();
        auto fn = std::move(it->second.second);
        it->second.first->cancel();
        timed.erase(it);
        fn(true);
      }
    }
    work.reset();
  }
};

HttpEngine::HttpEngine(std::string name) : impl_(std::make_unique<Impl>()) { impl_->name = std::move(name); }

HttpEngine::~HttpEngine() { stop(); }

void HttpEngine::start() {
  std::lock_guard lk(impl_->mu);
  if (impl_->accepting) return;
  impl_->io.restart();
  impl_->work.emplace(impl_->io.get_executor());
  impl_->draining = false;
  impl_->accepting = true;
  impl_->stopping = false;
  impl_->thread = std::thread([impl = impl_.get()] {
    impl->thread_id = std::this_thread::get_id();
    impl->io.run();
  });
}

void HttpEngine::stop() {
  {
    std::lock_guard lk(impl_->mu);
    if (!impl_->accepting || impl_->stopping) return;
    impl_->stopping = true;
  }
  asio::post(impl_->io, [impl = impl_.get()] { impl->drain(); });
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->thread_id = std::thread::id{};
  std::lock_guard lk(impl_->mu);
  impl_->accepting = false;
}

bool HttpEngine::running() const noexcept {
  std::lock_guard lk(impl_->mu);
  return impl_->accepting && !impl_->stopping;
}

bool HttpEngine::post(std::function<void(bool)> fn, uint64_t delay_ms) {
  // Queued under the lock: a stop() that begins after the check finds the task in the queue, and its
  // drain runs it (cancelled). asio::post never runs the task inline, so the lock is not held by it.
  std::lock_guard lk(impl_->mu);
  if (!impl_->accepting) return false;
  // While stopping, the engine thread itself may still queue follow-up work (it runs cancelled).
  if (impl_->stopping && !impl_->on_thread()) return false;
  if (delay_ms == 0) {
    asio::post(impl_->io, [impl = impl_.get(), fn = std::move(fn)] { fn(impl->draining.load()); });
  } else {
    const auto due = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms);
    asio::post(impl_->io, [impl = impl_.get(), fn = std::move(fn), due]() mutable { impl->schedule(std::move(fn), due); });
  }
  return true;
}

uint64_t HttpEngine::submit_now(TransferSpec spec, std::shared_ptr<TransferHandler> handler) {
  return impl_->submit(std::move(spec), std::move(handler));
}

void HttpEngine::cancel_now(uint64_t id) { impl_->cancel(id, "cancelled"); }

bool HttpEngine::on_engine_thread() const noexcept { return impl_->on_thread(); }

uint64_t HttpEngine::now_ms() const noexcept { return mono_ms(); }

}  // namespace chorus::ai_common
