#include "protocols/ping.hpp"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <chrono>

#include <boost/asio/steady_timer.hpp>

#include "connection.hpp"
#include "node_impl.hpp"

namespace chorus::p2p {

namespace {

// Answering side: echo 32-byte payloads back.
class PingServerSink final : public StreamSink {
 public:
  explicit PingServerSink(NodeStats &stats) : stats_(stats) {}
  void data(Stream &s, BytesView b) override {
    // A ping client waits for each answer; one that keeps sending without reading is flooding us.
    if (s.conn->pending_send(s) + b.size() > 4096) {
      stats_.protocol_errors++;
      s.conn->stream_reset(s, CHORUS_E_PROTOCOL, "ping flood (the peer does not read our answers)");
      return;
    }
    s.conn->internal_write(s, b);
  }
  void eof(Stream &s) override { s.conn->stream_close_write(s); }
  void closed(Stream &, chorus_status, const std::string &) override {}

 private:
  NodeStats &stats_;
};

// Asking side: one 32-byte round trip.
class PingClientSink final : public StreamSink {
 public:
  using Done = std::function<void(chorus_status, uint64_t, const std::string &)>;
  explicit PingClientSink(Done done) : done_(std::move(done)) { randombytes_buf(payload_.data(), payload_.size()); }
  void start(Stream &s) {
    started_us_ = now_us();
    s.conn->internal_write(s, BytesView(payload_.data(), payload_.size()));
  }
  void data(Stream &s, BytesView b) override {
    got_.insert(got_.end(), b.begin(), b.end());
    if (got_.size() < payload_.size() || !done_) return;
    const bool ok = std::equal(payload_.begin(), payload_.end(), got_.begin());
    auto done = std::move(done_);
    done_ = nullptr;
    if (ok) done(CHORUS_OK, now_us() - started_us_, {});
    else done(CHORUS_E_PROTOCOL, 0, "ping answer does not match the payload");
    s.conn->stream_close_write(s);
  }
  void closed(Stream &, chorus_status status, const std::string &reason) override {
    if (done_) done_(status == CHORUS_OK ? CHORUS_E_IO : status, 0, "ping stream closed early: " + reason);
  }

 private:
  static uint64_t now_us() {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
  }
  Done done_;
  std::array<uint8_t, 32> payload_{};
  Bytes got_;
  uint64_t started_us_ = 0;
};

}  // namespace

std::unique_ptr<StreamSink> PingService::accept(Stream &s) {
  if (s.protocol != kPingProtocol) return nullptr;
  return std::make_unique<PingServerSink>(node_.stats());
}

void PingService::ping(const PeerId &peer, uint32_t timeout_ms, ReportFn report_to) {
  // One outcome per ping: the answer, a failure, or the deadline (which also resets the stream).
  struct State {
    bool reported = false;
    uint64_t stream = 0;
    boost::asio::steady_timer timer;
    explicit State(boost::asio::io_context &io) : timer(io) {}
  };
  auto state = std::make_shared<State>(node_.io());
  auto report = [report_to = std::move(report_to), state](chorus_status st, uint64_t rtt, const std::string &why) {
    if (state->reported) return;
    state->reported = true;
    state->timer.cancel();
    report_to(st, st == CHORUS_OK ? rtt : 0, why);
  };
  NodeImpl *node = &node_;
  const uint32_t limit = timeout_ms != 0 ? timeout_ms : node_.settings().limits.dial_timeout_ms;
  state->timer.expires_after(std::chrono::milliseconds(limit));
  state->timer.async_wait([node, state, report](const boost::system::error_code &ec) {
    if (ec || state->reported) return;
    report(CHORUS_E_TIMEOUT, 0, "no ping answer within the timeout");
    if (Stream *s = node->find_stream(state->stream)) s->conn->stream_reset(*s, CHORUS_E_TIMEOUT, "ping timed out");
  });
  auto sink = std::make_unique<PingClientSink>(report);
  auto *raw = sink.get();
  node_.open_stream(peer, {kPingProtocol}, std::move(sink), timeout_ms,
                    [raw, report, state](chorus_status st, Stream *s, const std::string &why) {
                      if (st != CHORUS_OK || s == nullptr) {
                        report(st, 0, why);
                        return;
                      }
                      if (state->reported) {  // timed out while opening
                        s->conn->stream_reset(*s, CHORUS_E_TIMEOUT, "ping timed out");
                        return;
                      }
                      state->stream = s->id;
                      raw->start(*s);
                    });
}

}  // namespace chorus::p2p
