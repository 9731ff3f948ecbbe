// HttpServer against real sockets: the server runs on an io_context with two worker threads and the
// tests talk to it with a synchronous Beast client (or raw bytes for malformed input). Tests wait on
// events (queues, condition variables, blocking reads), never on sleeps.
#include "http_server.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include <poll.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace chorus::host {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Response = http::response<http::string_body>;

std::string str(beast::string_view s) { return std::string(s.data(), s.size()); }
std::string str(const char *p, size_t n) { return std::string(p, n); }

// Exchanges handed over from handlers to the test thread.
class ExchangeQueue {
 public:
  void push(chorus_http_exchange *ex) {
    std::lock_guard lock(mu_);
    q_.push_back(ex);
    cv_.notify_all();
  }
  chorus_http_exchange *pop() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !q_.empty(); });
    auto *ex = q_.front();
    q_.pop_front();
    return ex;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<chorus_http_exchange *> q_;
};

struct Observation {
  std::string method;
  std::string route;
  int status = 0;
  double seconds = -1;
};

class ObserverLog {
 public:
  HttpServer::Observer observer() {
    return [this](std::string_view method, std::string_view route, int status, double seconds) {
      std::lock_guard lock(mu_);
      log_.push_back({std::string(method), std::string(route), status, seconds});
      cv_.notify_all();
    };
  }
  // Waits until `n` exchanges have been observed; returns the n-th.
  Observation wait(size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return log_.size() >= n; });
    return log_[n - 1];
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Observation> log_;
};

chorus_status respond_text(chorus_http_exchange *ex, int status, const std::string &body) {
  return HttpServer::respond(ex, status, "text/plain", nullptr, 0, body.data(), body.size());
}

// A handler answering `text` at once.
HttpServer::Handler answer(std::string text) {
  return [text](const chorus_http_request &, chorus_http_exchange *ex) { respond_text(ex, 200, text); };
}

// A blocking HTTP/1.1 client on one connection.
class Client {
 public:
  explicit Client(unsigned short port) : socket_(io_) {
    socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  }

  void send(const std::string &method, const std::string &target, const std::string &body = "",
            const std::vector<std::pair<std::string, std::string>> &headers = {}) {
    http::request<http::string_body> req;
    req.method_string(method);
    req.target(target);
    req.version(11);
    req.set(http::field::host, "127.0.0.1");
    for (const auto &[name, value] : headers) req.set(name, value);
    req.body() = body;
    req.prepare_payload();
    http::write(socket_, req);
  }
  Response receive() {
    Response res;
    http::read(socket_, buffer_, res);
    return res;
  }
  Response request(const std::string &method, const std::string &target,
                   const std::string &body = "",
                   const std::vector<std::pair<std::string, std::string>> &headers = {}) {
    send(method, target, body, headers);
    return receive();
  }
  // True once the server has closed the connection (the next read hits EOF or a reset).
  bool closed_by_server() {
    char c;
    beast::error_code ec;
    socket_.read_some(net::buffer(&c, 1), ec);
    return ec == net::error::eof || ec == net::error::connection_reset;
  }
  void write_raw(const std::string &bytes) { net::write(socket_, net::buffer(bytes)); }
  // Everything the server sends until it closes the connection.
  std::string read_to_eof() {
    std::string out(static_cast<const char *>(buffer_.data().data()), buffer_.size());
    buffer_.consume(buffer_.size());
    char chunk[4096];
    for (;;) {
      beast::error_code ec;
      const size_t n = socket_.read_some(net::buffer(chunk), ec);
      out.append(chunk, n);
      if (ec) break;
    }
    return out;
  }
  // Waits for the server to send something or close, without consuming it.
  bool readable_within(std::chrono::milliseconds timeout) {
    if (buffer_.size() > 0) return true;
    pollfd p{socket_.native_handle(), POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(timeout.count())) == 1;
  }
  unsigned short local_port() const { return socket_.local_endpoint().port(); }
  tcp::socket &socket() { return socket_; }
  beast::flat_buffer &buffer() { return buffer_; }
  void close() {
    beast::error_code ec;
    socket_.close(ec);
  }

 private:
  net::io_context io_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

class HttpServerTest : public ::testing::Test {
 protected:
  void start(HttpLimits limits = {}) {
    server_ = std::make_unique<HttpServer>(io_, limits);
    server_->set_observer(observed_.observer());
    server_->listen("127.0.0.1:0");
    const std::string address = server_->local_address();
    port_ = static_cast<unsigned short>(std::stoi(address.substr(address.rfind(':') + 1)));
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }

  void TearDown() override {
    if (server_) server_->stop();
    // Let the io_context run dry: every connection closes and nothing stays queued.
    work_.reset();
    for (auto &t : threads_) t.join();
    server_.reset();
  }

  void add(const std::string &method, const std::string &path, HttpServer::Handler h,
           bool prefix = false, const std::string &owner = "test") {
    std::string conflict;
    ASSERT_TRUE(server_->add_route(method, path, prefix, owner, std::move(h), &conflict)) << conflict;
  }
  HttpServer::Handler stash() {
    return [this](const chorus_http_request &, chorus_http_exchange *ex) { exchanges_.push(ex); };
  }

  net::io_context io_;
  net::executor_work_guard<net::io_context::executor_type> work_ = net::make_work_guard(io_);
  std::vector<std::thread> threads_;
  std::unique_ptr<HttpServer> server_;
  unsigned short port_ = 0;
  ObserverLog observed_;
  ExchangeQueue exchanges_;
};

void expect_json_error(const Response &res, int status) {
  EXPECT_EQ(res.result_int(), static_cast<unsigned>(status));
  EXPECT_EQ(str(res[http::field::content_type]), "application/json");
  EXPECT_EQ(str(res[http::field::server]), "chorus-agent");
  EXPECT_EQ(res.body().rfind("{\"error\":\"", 0), 0u) << res.body();
  EXPECT_EQ(res.body().back(), '}');
}

TEST_F(HttpServerTest, RoutesExactThenLongestPrefix) {
  start();
  add("GET", "/a", answer("exact /a"));
  add("GET", "/p2p/", answer("prefix /p2p/"), true);
  add("GET", "/p2p/x/", answer("prefix /p2p/x/"), true);
  add("GET", "/p2p/id", answer("exact /p2p/id"));
  add("*", "/any", answer("any"));
  add("POST", "/p2p/x/", answer("post prefix /p2p/x/"), true);

  Client c(port_);
  auto get = [&](const std::string &method, const std::string &target) {
    Response res = c.request(method, target);
    EXPECT_EQ(res.result_int(), 200u) << method << " " << target;
    return res.body();
  };
  EXPECT_EQ(get("GET", "/a"), "exact /a");
  EXPECT_EQ(get("GET", "/a?q=1&r=/p2p/"), "exact /a");
  EXPECT_EQ(get("GET", "/p2p/peers"), "prefix /p2p/");
  EXPECT_EQ(get("GET", "/p2p/"), "prefix /p2p/");
  EXPECT_EQ(get("GET", "/p2p/x/y/z"), "prefix /p2p/x/");
  EXPECT_EQ(get("GET", "/p2p/id"), "exact /p2p/id");
  EXPECT_EQ(get("GET", "/p2p/id/more"), "prefix /p2p/");
  EXPECT_EQ(get("DELETE", "/any"), "any");
  EXPECT_EQ(get("POST", "/p2p/x/1"), "post prefix /p2p/x/");
  // A longer prefix whose method does not fit falls back to a shorter one that does.
  EXPECT_EQ(get("GET", "/p2p/x/1"), "prefix /p2p/x/");

  Response res = c.request("GET", "/p2p");
  expect_json_error(res, 404);
  EXPECT_EQ(res.body(), "{\"error\":\"not found\"}");
  expect_json_error(c.request("GET", "/nothing/here"), 404);
}

TEST_F(HttpServerTest, MethodNotAllowedListsAllowedMethods) {
  start();
  add("GET", "/a", answer("a"));
  add("PUT", "/a", answer("a"));
  add("GET", "/dir/", answer("dir"), true);
  Client c(port_);
  Response res = c.request("POST", "/a");
  expect_json_error(res, 405);
  EXPECT_EQ(str(res[http::field::allow]), "GET, PUT");
  res = c.request("DELETE", "/dir/file");
  expect_json_error(res, 405);
  EXPECT_EQ(str(res[http::field::allow]), "GET");
  EXPECT_EQ(c.request("GET", "/a").result_int(), 200u);  // still usable after the errors
}

TEST_F(HttpServerTest, HandlerSeesAllRequestFields) {
  start();
  struct Seen {
    uint32_t struct_size = 0;
    std::string method, path, query, body, remote, test_header;
    uint32_t header_count = 0;
  };
  std::promise<Seen> seen;
  add("POST", "/echo", [&](const chorus_http_request &req, chorus_http_exchange *ex) {
    Seen s;
    s.struct_size = req.struct_size;
    s.method = str(req.method, req.method_len);
    s.path = str(req.path, req.path_len);
    s.query = str(req.query, req.query_len);
    s.body = str(req.body, req.body_len);
    s.remote = str(req.remote, req.remote_len);
    s.header_count = req.header_count;
    for (uint32_t i = 0; i < req.header_count; ++i) {
      if (str(req.headers[i].name, req.headers[i].name_len) == "X-Test") {
        s.test_header = str(req.headers[i].value, req.headers[i].value_len);
      }
    }
    seen.set_value(s);
    respond_text(ex, 200, "ok");
  });
  Client c(port_);
  Response res = c.request("POST", "/echo?x=1&y=%20", "hello body", {{"X-Test", "yes please"}});
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_EQ(res.body(), "ok");
  EXPECT_EQ(str(res[http::field::content_type]), "text/plain");
  EXPECT_EQ(str(res[http::field::server]), "chorus-agent");
  Seen s = seen.get_future().get();
  EXPECT_EQ(s.struct_size, sizeof(chorus_http_request));
  EXPECT_EQ(s.method, "POST");
  EXPECT_EQ(s.path, "/echo");
  EXPECT_EQ(s.query, "x=1&y=%20");
  EXPECT_EQ(s.body, "hello body");
  EXPECT_EQ(s.test_header, "yes please");
  EXPECT_EQ(s.header_count, 3u);  // Host, X-Test, Content-Length
  EXPECT_EQ(s.remote, "127.0.0.1:" + std::to_string(c.local_port()));
}

TEST_F(HttpServerTest, AsyncRespondFromAnotherThread) {
  start();
  add("GET", "/later", stash());
  Client c(port_);
  c.send("GET", "/later");
  chorus_http_exchange *ex = exchanges_.pop();
  std::thread plugin([ex] {
    const chorus_http_header headers[] = {{"X-Plugin", 8, "yes", 3}};
    EXPECT_EQ(HttpServer::respond(ex, 201, "application/json", headers, 1, "{\"ok\":true}", 11),
              CHORUS_OK);
  });
  plugin.join();
  Response res = c.receive();
  EXPECT_EQ(res.result_int(), 201u);
  EXPECT_EQ(res.body(), "{\"ok\":true}");
  EXPECT_EQ(str(res[http::field::content_type]), "application/json");
  EXPECT_EQ(str(res["X-Plugin"]), "yes");
  EXPECT_EQ(str(res[http::field::server]), "chorus-agent");
}

TEST_F(HttpServerTest, StreamsChunksInOrderAsTheyAreWritten) {
  start();
  add("GET", "/events", stash());
  Client c(port_);
  c.send("GET", "/events");
  chorus_http_exchange *ex = exchanges_.pop();
  const chorus_http_header headers[] = {{"Cache-Control", 13, "no-cache", 8}};
  ASSERT_EQ(HttpServer::stream_begin(ex, 200, "text/event-stream", headers, 1), CHORUS_OK);

  http::response_parser<http::string_body> parser;
  std::vector<uint64_t> chunk_sizes;
  auto on_chunk = [&](uint64_t size, beast::string_view, beast::error_code &) {
    chunk_sizes.push_back(size);
  };
  parser.on_chunk_header(on_chunk);
  http::read_header(c.socket(), c.buffer(), parser);
  EXPECT_EQ(parser.get().result_int(), 200u);
  EXPECT_TRUE(parser.get().chunked());
  EXPECT_EQ(str(parser.get()[http::field::content_type]), "text/event-stream");
  EXPECT_EQ(str(parser.get()["Cache-Control"]), "no-cache");

  // Each piece reaches the client before the next one is written: it is really streamed.
  std::string expected;
  for (const std::string piece : {"data: one\n\n", "data: two\n\n", "data: three\n\n"}) {
    ASSERT_EQ(HttpServer::stream_write(ex, piece.data(), piece.size()), CHORUS_OK);
    expected += piece;
    while (parser.get().body().size() < expected.size()) {
      http::read_some(c.socket(), c.buffer(), parser);
    }
    EXPECT_EQ(parser.get().body(), expected);
  }
  EXPECT_EQ(HttpServer::stream_write(ex, "", 0), CHORUS_OK);  // empty: nothing sent, not the end
  // Many writes at once still arrive whole and in order.
  for (int i = 0; i < 100; ++i) {
    const std::string piece = std::to_string(i) + ",";
    ASSERT_EQ(HttpServer::stream_write(ex, piece.data(), piece.size()), CHORUS_OK);
    expected += piece;
  }
  ASSERT_EQ(HttpServer::stream_end(ex), CHORUS_OK);
  http::read(c.socket(), c.buffer(), parser);
  EXPECT_TRUE(parser.is_done());
  EXPECT_EQ(parser.get().body(), expected);
  ASSERT_EQ(chunk_sizes.size(), 3u + 100u + 1u);  // one chunk per write, then the last (size 0)
  EXPECT_EQ(chunk_sizes[0], 11u);
  EXPECT_EQ(chunk_sizes.back(), 0u);

  Observation o = observed_.wait(1);
  EXPECT_EQ(o.status, 200);
  EXPECT_EQ(o.route, "/events");
  // The connection stays usable after a stream.
  add("GET", "/after", answer("after"));
  EXPECT_EQ(c.request("GET", "/after").body(), "after");
}

TEST_F(HttpServerTest, StreamWriteAfterClientDisconnectIsCancelled) {
  start();
  add("GET", "/stream", stash());
  {
    Client c(port_);
    c.send("GET", "/stream");
    chorus_http_exchange *ex = exchanges_.pop();
    ASSERT_EQ(HttpServer::stream_begin(ex, 200, "application/x-ndjson", nullptr, 0), CHORUS_OK);
    ASSERT_EQ(HttpServer::stream_write(ex, "{}\n", 3), CHORUS_OK);
    http::response_parser<http::string_body> parser;
    http::read_header(c.socket(), c.buffer(), parser);
    c.close();
    // The server notices the hang-up by itself and reports the exchange as finished.
    Observation o = observed_.wait(1);
    EXPECT_EQ(o.status, 200);
    EXPECT_EQ(HttpServer::stream_write(ex, "{}\n", 3), CHORUS_E_CANCELLED);
    EXPECT_EQ(HttpServer::stream_end(ex), CHORUS_E_CANCELLED);  // finishes (releases) it
  }
  {
    // Gone before any answer: reported as 499; the late answer is a no-op.
    Client c(port_);
    c.send("GET", "/stream");
    chorus_http_exchange *ex = exchanges_.pop();
    c.close();
    Observation o = observed_.wait(2);
    EXPECT_EQ(o.status, 499);
    EXPECT_EQ(respond_text(ex, 200, "too late"), CHORUS_E_CANCELLED);
  }
}

TEST_F(HttpServerTest, StreamBackPressureReturnsBusy) {
  start();
  add("GET", "/big", stash());
  Client c(port_);
  c.send("GET", "/big");
  chorus_http_exchange *ex = exchanges_.pop();
  ASSERT_EQ(HttpServer::stream_begin(ex, 200, "application/octet-stream", nullptr, 0), CHORUS_OK);
  // The client reads nothing, so 32 MiB cannot all leave (more than the kernel buffers hold).
  const std::string big(32u << 20, 'x');
  EXPECT_EQ(HttpServer::stream_write(ex, big.data(), big.size()), CHORUS_OK);  // alone: accepted
  EXPECT_EQ(HttpServer::stream_write(ex, "y", 1), CHORUS_E_BUSY);
  c.close();
  observed_.wait(1);
  EXPECT_EQ(HttpServer::stream_end(ex), CHORUS_E_CANCELLED);
}

TEST_F(HttpServerTest, ApiMisuseIsRejectedNotFatal) {
  start();
  std::vector<chorus_status> whole_results;
  add("GET", "/whole", [&](const chorus_http_request &, chorus_http_exchange *ex) {
    const chorus_http_header crlf[] = {{"X-A", 3, "a\r\nX-Injected: 1", 16}};
    const chorus_http_header length[] = {{"Content-Length", 14, "5", 1}};
    const chorus_http_header bad_name[] = {{"Bad Name", 8, "v", 1}};
    const chorus_http_header null_name[] = {{nullptr, 0, "v", 1}};
    whole_results = {
        HttpServer::respond(nullptr, 200, "text/plain", nullptr, 0, "", 0),
        HttpServer::respond(ex, 99, "text/plain", nullptr, 0, "", 0),
        HttpServer::respond(ex, 600, "text/plain", nullptr, 0, "", 0),
        HttpServer::respond(ex, 204, "text/plain", nullptr, 0, "x", 1),
        HttpServer::respond(ex, 200, "text/plain", nullptr, 0, nullptr, 3),
        HttpServer::respond(ex, 200, "text/plain", nullptr, 2, "", 0),
        HttpServer::respond(ex, 200, "text/plain\r\nX: y", nullptr, 0, "", 0),
        HttpServer::respond(ex, 200, "text/plain", crlf, 1, "", 0),
        HttpServer::respond(ex, 200, "text/plain", length, 1, "", 0),
        HttpServer::respond(ex, 200, "text/plain", bad_name, 1, "", 0),
        HttpServer::respond(ex, 200, "text/plain", null_name, 1, "", 0),
        HttpServer::stream_write(ex, "x", 1),  // not streaming
        HttpServer::stream_end(ex),            // not streaming
        HttpServer::stream_write(nullptr, "x", 1),
        HttpServer::stream_end(nullptr),
        HttpServer::stream_begin(nullptr, 200, "text/plain", nullptr, 0),
        HttpServer::stream_begin(ex, 204, "text/plain", nullptr, 0),
        // None of the above consumed the exchange:
        HttpServer::respond(ex, 200, nullptr, nullptr, 0, "fine", 4),
        // Everything after the answer:
        HttpServer::respond(ex, 200, "text/plain", nullptr, 0, "", 0),
        HttpServer::stream_begin(ex, 200, "text/plain", nullptr, 0),
        HttpServer::stream_write(ex, "x", 1),
        HttpServer::stream_end(ex),
    };
  });
  std::vector<chorus_status> stream_results;
  add("GET", "/stream", [&](const chorus_http_request &, chorus_http_exchange *ex) {
    stream_results = {
        HttpServer::stream_begin(ex, 200, "text/plain", nullptr, 0),
        HttpServer::stream_begin(ex, 200, "text/plain", nullptr, 0),
        HttpServer::respond(ex, 200, "text/plain", nullptr, 0, "", 0),
        HttpServer::stream_write(ex, nullptr, 1),
        HttpServer::stream_write(ex, "ab", 2),
        HttpServer::stream_end(ex),
        HttpServer::stream_write(ex, "c", 1),
        HttpServer::stream_end(ex),
    };
  });
  Client c(port_);
  Response res = c.request("GET", "/whole");
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_EQ(res.body(), "fine");
  EXPECT_EQ(str(res[http::field::content_type]), "application/octet-stream");
  const size_t n = whole_results.size();
  ASSERT_EQ(n, 22u);
  for (size_t i = 0; i < n; ++i) {
    const chorus_status want = i == 17 ? CHORUS_OK : CHORUS_E_INVALID_ARG;
    EXPECT_EQ(whole_results[i], want) << "call " << i;
  }
  res = c.request("GET", "/stream");
  EXPECT_EQ(res.body(), "ab");
  const std::vector<chorus_status> want = {
      CHORUS_OK, CHORUS_E_INVALID_ARG, CHORUS_E_INVALID_ARG, CHORUS_E_INVALID_ARG,
      CHORUS_OK, CHORUS_OK,            CHORUS_E_INVALID_ARG, CHORUS_E_INVALID_ARG};
  EXPECT_EQ(stream_results, want);
}

TEST_F(HttpServerTest, ThrowingHandlerGets500) {
  start();
  add("GET", "/throw", [](const chorus_http_request &, chorus_http_exchange *) {
    throw std::runtime_error("boom");
  });
  Client c(port_);
  Response res = c.request("GET", "/throw");
  expect_json_error(res, 500);
  EXPECT_EQ(observed_.wait(1).status, 500);
}

TEST_F(HttpServerTest, BodyTooLargeIs413) {
  HttpLimits limits;
  limits.max_body_bytes = 16;
  start(limits);
  add("POST", "/upload", answer("stored"));
  Client c(port_);
  EXPECT_EQ(c.request("POST", "/upload", std::string(16, 'a')).body(), "stored");
  Response res = c.request("POST", "/upload", std::string(1000, 'a'));
  expect_json_error(res, 413);
  EXPECT_FALSE(res.keep_alive());
  EXPECT_TRUE(c.closed_by_server());
  Observation o = observed_.wait(2);
  EXPECT_EQ(o.status, 413);
  EXPECT_EQ(o.method, "POST");
  EXPECT_EQ(o.route, "");
}

TEST_F(HttpServerTest, HeaderTooLargeIs431) {
  HttpLimits limits;
  limits.max_header_bytes = 1024;
  start(limits);
  add("GET", "/", answer("root"));
  Client c(port_);
  Response res = c.request("GET", "/", "", {{"X-Big", std::string(4000, 'h')}});
  expect_json_error(res, 431);
  EXPECT_TRUE(c.closed_by_server());
}

TEST_F(HttpServerTest, MalformedRequestsGet400AndClose) {
  HttpLimits limits;
  limits.read_timeout = std::chrono::milliseconds(5000);  // a safety net only
  start(limits);
  add("GET", "/", answer("root"));
  const std::string bad[] = {
      "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
      "GET / HTTP/9.9\r\nHost: x\r\n\r\n",
      "G(T / HTTP/1.1\r\n\r\n",
      "GET http://example.com/ HTTP/1.1\r\nHost: x\r\n\r\n",  // not an origin-form target
      "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 15),  // a TLS hello
  };
  for (const std::string &bytes : bad) {
    Client c(port_);
    c.write_raw(bytes);
    const std::string answer = c.read_to_eof();
    EXPECT_EQ(answer.rfind("HTTP/1.1 400 ", 0), 0u) << bytes << "\n--\n" << answer;
    EXPECT_NE(answer.find("{\"error\":\""), std::string::npos) << answer;
    EXPECT_NE(answer.find("application/json"), std::string::npos) << answer;
  }
  // The server is fine afterwards.
  Client c(port_);
  EXPECT_EQ(c.request("GET", "/").body(), "root");
}

TEST_F(HttpServerTest, ReadTimeoutClosesSlowClient) {
  HttpLimits limits;
  limits.read_timeout = std::chrono::milliseconds(200);
  start(limits);
  Client c(port_);
  c.write_raw("GET / HTTP/1.1\r\nHost: x\r\n");  // ... and never the blank line
  EXPECT_EQ(c.read_to_eof(), "");
}

TEST_F(HttpServerTest, ExpectContinueGetsInterimResponse) {
  start();
  add("POST", "/up", [](const chorus_http_request &req, chorus_http_exchange *ex) {
    HttpServer::respond(ex, 200, "text/plain", nullptr, 0, req.body, req.body_len);
  });
  Client c(port_);
  c.write_raw("POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
  const std::string interim = "HTTP/1.1 100 Continue\r\n\r\n";
  std::string got(interim.size(), '\0');
  net::read(c.socket(), net::buffer(got));
  EXPECT_EQ(got, interim);
  c.write_raw("hello");
  Response res = c.receive();
  EXPECT_EQ(res.body(), "hello");
}

TEST_F(HttpServerTest, Http10StreamEndsWithConnection) {
  start();
  add("GET", "/s", stash());
  Client c(port_);
  c.write_raw("GET /s HTTP/1.0\r\n\r\n");
  chorus_http_exchange *ex = exchanges_.pop();
  ASSERT_EQ(HttpServer::stream_begin(ex, 200, "text/plain", nullptr, 0), CHORUS_OK);
  ASSERT_EQ(HttpServer::stream_write(ex, "ab", 2), CHORUS_OK);
  ASSERT_EQ(HttpServer::stream_write(ex, "cd", 2), CHORUS_OK);
  ASSERT_EQ(HttpServer::stream_end(ex), CHORUS_OK);
  const std::string answer = c.read_to_eof();
  EXPECT_EQ(answer.rfind("HTTP/1.0 200 ", 0), 0u) << answer;
  EXPECT_EQ(answer.find("chunked"), std::string::npos) << answer;
  EXPECT_EQ(answer.substr(answer.size() - 4), "abcd");
}

TEST_F(HttpServerTest, RouteConflicts) {
  start();
  auto h = answer("x");
  std::string owner;
  auto try_add = [&](const std::string &method, const std::string &path, bool prefix,
                     const std::string &who) {
    owner.clear();
    return server_->add_route(method, path, prefix, who, h, &owner);
  };
  EXPECT_TRUE(try_add("GET", "/a", false, "p1"));
  EXPECT_FALSE(try_add("GET", "/a", false, "p2"));
  EXPECT_EQ(owner, "p1");
  EXPECT_FALSE(try_add("*", "/a", false, "p2"));  // "*" overlaps GET
  EXPECT_EQ(owner, "p1");
  EXPECT_TRUE(try_add("POST", "/a", false, "p2"));
  EXPECT_TRUE(try_add("*", "/star/", true, "p1"));
  EXPECT_FALSE(try_add("DELETE", "/star/", true, "p2"));
  EXPECT_EQ(owner, "p1");
  // Same path, other kind: no conflict.
  EXPECT_TRUE(try_add("GET", "/x/", false, "p1"));
  EXPECT_TRUE(try_add("GET", "/x/", true, "p2"));
  // Malformed routes are refused outright.
  EXPECT_THROW(try_add("", "/m", false, "p1"), std::invalid_argument);
  EXPECT_THROW(try_add("GE T", "/m", false, "p1"), std::invalid_argument);
  EXPECT_THROW(try_add("GET", "m", false, "p1"), std::invalid_argument);
  EXPECT_THROW(try_add("GET", "/m", true, "p1"), std::invalid_argument);  // prefix without '/'
  EXPECT_THROW(try_add("GET", "/m?x", false, "p1"), std::invalid_argument);
  EXPECT_THROW(try_add("GET", "/m n", false, "p1"), std::invalid_argument);
  EXPECT_THROW(server_->add_route("GET", "/m", false, "p1", nullptr, &owner), std::invalid_argument);
  // Once p1's routes are gone, p2 may mount them.
  server_->remove_routes("p1");
  EXPECT_TRUE(try_add("GET", "/a", false, "p2"));
  EXPECT_TRUE(try_add("GET", "/star/", true, "p2"));
  server_->remove_routes("nobody");  // unknown owner: nothing happens
}

TEST_F(HttpServerTest, RemoveRoutesWaitsForRunningHandlerAndCancelsExchanges) {
  start();
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> handler_returned{false};
  add("GET", "/block", [&](const chorus_http_request &, chorus_http_exchange *ex) {
    entered.set_value();
    released.wait();
    respond_text(ex, 200, "late but fine");
    handler_returned = true;
  }, false, "plug");
  add("GET", "/hold", stash(), false, "plug");
  add("GET", "/probe", answer("probe"), false, "plug");
  add("GET", "/other", answer("other"), false, "someone-else");

  Client holder(port_);
  holder.send("GET", "/hold");
  chorus_http_exchange *held = exchanges_.pop();
  Client blocked(port_);
  blocked.send("GET", "/block");
  entered.get_future().wait();

  std::atomic<bool> remove_returned{false};
  bool handler_done_when_removed = false;
  std::thread remover([&] {
    server_->remove_routes("plug");
    handler_done_when_removed = handler_returned.load();
    remove_returned = true;
  });
  // remove_routes() unmounts first and then waits; see the first part happen.
  Client probe(port_);
  while (probe.request("GET", "/probe").result_int() == 200u) {
  }
  EXPECT_EQ(probe.request("GET", "/probe").result_int(), 404u);
  // It cannot have returned: the handler is still running. Other owners' routes keep working.
  EXPECT_FALSE(remove_returned.load());
  EXPECT_EQ(probe.request("GET", "/other").body(), "other");

  release.set_value();
  remover.join();
  EXPECT_TRUE(handler_done_when_removed);
  EXPECT_EQ(blocked.receive().body(), "late but fine");

  // The exchange the plugin still held was answered 503 and is a no-op now.
  Response res = holder.receive();
  expect_json_error(res, 503);
  EXPECT_TRUE(holder.closed_by_server());
  EXPECT_EQ(respond_text(held, 200, "too late"), CHORUS_E_CANCELLED);
  EXPECT_EQ(probe.request("GET", "/block").result_int(), 404u);
}

TEST_F(HttpServerTest, ObserverGetsMethodRouteStatusAndDuration) {
  start();
  add("GET", "/obs", [](const chorus_http_request &, chorus_http_exchange *ex) {
    respond_text(ex, 202, "accepted");
  });
  add("*", "/pre/", answer("pre"), true);
  Client c(port_);
  c.request("GET", "/obs");
  Observation o = observed_.wait(1);
  EXPECT_EQ(o.method, "GET");
  EXPECT_EQ(o.route, "/obs");
  EXPECT_EQ(o.status, 202);
  EXPECT_GE(o.seconds, 0.0);
  EXPECT_LT(o.seconds, 60.0);
  c.request("PATCH", "/pre/deep/path");
  o = observed_.wait(2);
  EXPECT_EQ(o.method, "PATCH");
  EXPECT_EQ(o.route, "/pre/");
  EXPECT_EQ(o.status, 200);
  c.request("GET", "/missing");
  o = observed_.wait(3);
  EXPECT_EQ(o.route, "");
  EXPECT_EQ(o.status, 404);
}

TEST_F(HttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  start();
  std::mutex mu;
  std::vector<std::string> remotes;
  add("GET", "/who", [&](const chorus_http_request &req, chorus_http_exchange *ex) {
    {
      std::lock_guard lock(mu);
      remotes.emplace_back(req.remote, req.remote_len);
    }
    respond_text(ex, 200, "you");
  });
  Client c(port_);
  Response first = c.request("GET", "/who");
  EXPECT_TRUE(first.keep_alive());
  Response second = c.request("GET", "/who");
  EXPECT_EQ(second.body(), "you");
  // Two requests sent back to back (pipelined) are answered in order.
  c.send("GET", "/who");
  c.send("GET", "/missing");
  EXPECT_EQ(c.receive().result_int(), 200u);
  EXPECT_EQ(c.receive().result_int(), 404u);
  // Connection: close is honoured.
  Response last = c.request("GET", "/who", "", {{"Connection", "close"}});
  EXPECT_FALSE(last.keep_alive());
  EXPECT_TRUE(c.closed_by_server());
  std::lock_guard lock(mu);
  ASSERT_EQ(remotes.size(), 4u);
  for (const auto &r : remotes) EXPECT_EQ(r, remotes[0]);  // same connection every time
}

TEST_F(HttpServerTest, MaxConnectionsClosesExtraConnections) {
  HttpLimits limits;
  limits.max_connections = 1;
  start(limits);
  add("GET", "/", answer("root"));
  Client first(port_);
  EXPECT_EQ(first.request("GET", "/").body(), "root");  // the server holds this connection now
  Client second(port_);
  beast::error_code ec;
  http::request<http::string_body> req{http::verb::get, "/", 11};
  http::write(second.socket(), req, ec);  // may or may not fail; the read below must
  Response res;
  http::read(second.socket(), second.buffer(), res, ec);
  EXPECT_TRUE(ec) << "extra connection was served";
  EXPECT_EQ(first.request("GET", "/").body(), "root");
}

TEST_F(HttpServerTest, StopAnswersInFlightExchangesAndIsIdempotent) {
  start();
  add("GET", "/hold", stash());
  Client c(port_);
  c.send("GET", "/hold");
  chorus_http_exchange *ex = exchanges_.pop();
  Client idle(port_);
  EXPECT_EQ(idle.request("GET", "/nope").result_int(), 404u);

  server_->stop();
  EXPECT_EQ(respond_text(ex, 200, "too late"), CHORUS_E_CANCELLED);  // synchronous no-op
  Response res = c.receive();
  expect_json_error(res, 503);
  EXPECT_TRUE(c.closed_by_server());
  EXPECT_TRUE(idle.closed_by_server());
  server_->stop();  // again: nothing happens
  // Not accepting any more.
  net::io_context io;
  tcp::socket s(io);
  beast::error_code ec;
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port_), ec);
  EXPECT_TRUE(ec);
}

TEST_F(HttpServerTest, StopWithGraceWritesTheAnswersUnderWayBeforeReturning) {
  // What the host does at exit: stop with a grace period, then stop the io_context at once. The
  // answer a plugin sent just before and the 503 of the exchange it still held must both arrive.
  start();
  add("GET", "/hold", stash());
  Client answered(port_), cancelled(port_);
  answered.send("GET", "/hold");
  chorus_http_exchange *first = exchanges_.pop();
  cancelled.send("GET", "/hold");
  exchanges_.pop();
  ASSERT_EQ(respond_text(first, 200, "last words"), CHORUS_OK);

  EXPECT_TRUE(server_->stop(std::chrono::seconds(10)));
  io_.stop();
  for (auto &t : threads_) t.join();
  threads_.clear();

  // Without the grace period these connections would sit in the stopped io_context, unanswered.
  ASSERT_TRUE(answered.readable_within(std::chrono::seconds(10)));
  ASSERT_TRUE(cancelled.readable_within(std::chrono::seconds(10)));
  Response res = answered.receive();
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_EQ(res.body(), "last words");
  expect_json_error(cancelled.receive(), 503);
  EXPECT_TRUE(answered.closed_by_server());
  EXPECT_TRUE(cancelled.closed_by_server());
}

TEST_F(HttpServerTest, StopGraceIsBoundedByAClientThatDoesNotRead) {
  start();
  std::promise<void> answered;
  add("GET", "/big", [&answered](const chorus_http_request &, chorus_http_exchange *ex) {
    respond_text(ex, 200, std::string(64 << 20, 'x'));  // far more than the socket buffers hold
    answered.set_value();
  });
  Client reader(port_), stuck(port_);
  stuck.send("GET", "/big");
  answered.get_future().wait();
  EXPECT_EQ(reader.request("GET", "/nope").result_int(), 404u);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(server_->stop(std::chrono::milliseconds(200)));
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(waited, std::chrono::milliseconds(200));
  EXPECT_LT(waited, std::chrono::seconds(5));
  EXPECT_TRUE(reader.closed_by_server());
  stuck.close();  // lets the write fail so TearDown's io_context runs dry
}

TEST(HttpServerLifetimeTest, DestroyAfterIoContextStoppedDoesNotLeak) {
  // Exchanges the plugin still holds and connections with pending operations are all released
  // once the server and the (stopped) io_context are gone; ASan's leak check verifies it.
  ExchangeQueue exchanges;
  chorus_http_exchange *answered_late = nullptr;
  {
    net::io_context io;
    auto work = net::make_work_guard(io);
    auto server = std::make_unique<HttpServer>(io);
    std::string conflict;
    ASSERT_TRUE(server->add_route(
        "GET", "/hold", false, "p",
        [&](const chorus_http_request &, chorus_http_exchange *ex) { exchanges.push(ex); }, &conflict));
    server->listen("127.0.0.1:0");
    const std::string address = server->local_address();
    const auto port = static_cast<unsigned short>(std::stoi(address.substr(address.rfind(':') + 1)));
    std::thread runner([&] { io.run(); });
    Client a(port);
    a.send("GET", "/hold");
    answered_late = exchanges.pop();
    Client b(port);
    b.send("GET", "/hold");
    exchanges.pop();  // never finished by the "plugin"
    Client streaming(port);
    streaming.send("GET", "/hold");
    chorus_http_exchange *s = exchanges.pop();
    EXPECT_EQ(HttpServer::stream_begin(s, 200, "text/plain", nullptr, 0), CHORUS_OK);
    EXPECT_EQ(HttpServer::stream_write(s, "x", 1), CHORUS_OK);  // left unfinished too

    io.stop();
    runner.join();
    server.reset();
    // The plugin may still finish what it holds; it is a no-op.
    EXPECT_EQ(respond_text(answered_late, 200, "late"), CHORUS_E_CANCELLED);
  }
}

TEST(HttpServerListenTest, RejectsBadAddresses) {
  net::io_context io;
  for (const char *address : {"nonsense", "127.0.0.1", "127.0.0.1:99999", "127.0.0.1:-1",
                              "300.1.1.1:80", "::1:80", "[::1]80", "127.0.0.1:8x"}) {
    HttpServer server(io);
    try {
      server.listen(address);
      ADD_FAILURE() << address << " accepted";
    } catch (const std::runtime_error &e) {
      EXPECT_NE(std::string(e.what()).find(address), std::string::npos) << e.what();
    }
  }
  // A port in use names the reason.
  HttpServer first(io);
  first.listen("127.0.0.1:0");
  HttpServer second(io);
  EXPECT_THROW(second.listen(first.local_address()), std::runtime_error);
}

}  // namespace
}  // namespace chorus::host
