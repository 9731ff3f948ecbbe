// libFuzzer target: the host HTTP server (http_server.hpp) as a client on the network sees it. One
// HttpServer runs in-process for the whole fuzzing session, listening on 127.0.0.1:<free port> with a
// worker thread. Each input is sent as raw bytes over a fresh loopback connection, the client then
// half-closes and reads until the server closes. So this covers Beast's parser as the host configures
// it (header/body limits, 100-continue, keep-alive and pipelining, chunked bodies), the host's request
// handling (target/query split, routing, 404/405/413/431/400 answers, linger-close) and the exchange
// API the handler uses to answer (whole and streamed responses, response headers taken from the
// request and thus fuzzed too).
//
// Routes: "*" on prefix /f/ and "GET" on exact /g (so 404 and 405 are reachable). The handler picks an
// answer from the path:
//   .../stream   streamed answer: the request body in two chunks
//   .../reflect  the request's own headers sent back as response headers (the host must refuse the
//                ones it manages or that are malformed with INVALID_ARG, and the handler then answers
//                plainly: an exchange must always be finished)
//   .../throw    the handler throws (the host answers 500)
//   otherwise    200 with the request body echoed
// Limits are small so the limit paths are cheap to reach, and timeouts short. A server that neither
// answers nor closes after the client's half-close shows up as a libFuzzer timeout (-timeout=10).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "http_server.hpp"

namespace {

using chorus::host::HttpLimits;
using chorus::host::HttpServer;

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

void handle(const chorus_http_request &req, chorus_http_exchange *ex) {
  const std::string_view path(req.path, req.path_len);
  const std::string_view body(req.body, req.body_len);
  if (ends_with(path, "/throw")) throw std::runtime_error("handler failure");
  if (ends_with(path, "/stream")) {
    if (HttpServer::stream_begin(ex, 200, "text/plain", nullptr, 0) != CHORUS_OK) {
      HttpServer::respond(ex, 500, nullptr, nullptr, 0, nullptr, 0);
      return;
    }
    const size_t half = body.size() / 2;
    HttpServer::stream_write(ex, body.data(), half);
    HttpServer::stream_write(ex, body.data() + half, body.size() - half);
    HttpServer::stream_end(ex);
    return;
  }
  if (ends_with(path, "/reflect")) {
    std::vector<chorus_http_header> headers(req.headers, req.headers + req.header_count);
    const int32_t status = 200 + static_cast<int32_t>(req.query_len % 400);  // 200..599, 204/304 included
    if (HttpServer::respond(ex, status, "text/plain", headers.data(), headers.size(), body.data(), body.size()) ==
        CHORUS_OK)
      return;
    // Refused (bad header, or a body with 204/304): finish the exchange anyway.
    HttpServer::respond(ex, 500, nullptr, nullptr, 0, nullptr, 0);
    return;
  }
  HttpServer::respond(ex, 200, "application/octet-stream", nullptr, 0, body.data(), body.size());
}

struct Fixture {
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work = boost::asio::make_work_guard(io);
  std::unique_ptr<HttpServer> server;
  std::thread worker;
  sockaddr_in address{};

  Fixture() {
    HttpLimits limits;
    limits.max_body_bytes = 2048;
    limits.max_header_bytes = 1024;
    limits.read_timeout = std::chrono::milliseconds(2000);
    limits.idle_timeout = std::chrono::milliseconds(2000);
    limits.write_timeout = std::chrono::milliseconds(2000);
    limits.max_connections = 64;
    server = std::make_unique<HttpServer>(io, limits);
    server->listen("127.0.0.1:0");
    std::string conflict;
    if (!server->add_route("*", "/f/", true, "fuzz", handle, &conflict) ||
        !server->add_route("GET", "/g", false, "fuzz", handle, &conflict)) {
      fprintf(stderr, "http_server_fuzz: add_route failed (%s)\n", conflict.c_str());
      abort();
    }
    const std::string local = server->local_address();
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(std::stoi(local.substr(local.rfind(':') + 1))));
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    worker = std::thread([this] { io.run(); });
  }
  // Never destroyed: libFuzzer exits the process without running static destructors in most paths,
  // and a server torn down mid-run would only add noise.
};

Fixture &fixture() {
  static Fixture *f = new Fixture();
  return *f;
}

// A blocking connect can be interrupted by libFuzzer's timer signal. It stalls long enough for that
// when the SYN reuses a port pair the server still holds in TIME_WAIT (the server closes first, at
// thousands of connections a second) and waits for the retransmit. The attempt goes on in the
// kernel after EINTR, so wait for it instead of calling connect again.
bool connect_to(int fd, const sockaddr_in &address) {
  if (::connect(fd, reinterpret_cast<const sockaddr *>(&address), sizeof address) == 0) return true;
  if (errno != EINTR) return false;
  for (;;) {
    pollfd p{fd, POLLOUT, 0};
    const int n = ::poll(&p, 1, 15000);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      errno = n == 0 ? ETIMEDOUT : errno;
      return false;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return false;
    errno = err;
    return err == 0;
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  (void)fixture();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Fixture &f = fixture();
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    perror("http_server_fuzz: socket");
    abort();
  }
  // Longer than libFuzzer's -timeout, so a server that hangs is reported as a timeout with its input.
  timeval tv{15, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (!connect_to(fd, f.address)) {
    perror("http_server_fuzz: connect");
    abort();
  }
  // The server may answer and close before reading everything (EPIPE/ECONNRESET): that is fine.
  size_t sent = 0;
  while (sent < size) {
    const ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      break;
    }
    sent += static_cast<size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  char buf[16384];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    break;  // EOF (the server closed), reset, or our own 15 s limit
  }
  ::close(fd);
  return 0;
}
