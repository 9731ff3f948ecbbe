// Fuzzes the yamux session: arbitrary bytes from the peer, interleaved with application calls, for a
// client and a server session. A handler that writes, closes, resets and consumes from inside its
// callbacks exercises re-entrancy. Checked: no crash or sanitizer report, Handler calls only name
// live streams, the stream count matches, output stays bounded, a failed session stays failed.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdio>
#include <cstdlib>
#include <unordered_set>

#include "yamux/session.hpp"

using namespace chorus::p2p;
using namespace chorus::p2p::yamux;

namespace {

void check(bool ok, const char *what) {
  if (!ok) {
    std::fprintf(stderr, "invariant broken: %s\n", what);
    std::abort();
  }
}

struct FuzzHandler : Handler {
  Session *session = nullptr;
  FuzzedDataProvider *fdp = nullptr;
  std::unordered_set<uint32_t> live;
  uint8_t reply[64] = {};

  uint8_t choice() { return fdp->remaining_bytes() ? fdp->ConsumeIntegral<uint8_t>() : 0; }

  void on_stream_opened(uint32_t id) override {
    check(id != 0 && live.insert(id).second, "opened a live or zero id");
    switch (choice() % 4) {
      case 1: session->write(id, BytesView(reply, 10)); break;
      case 2: session->close(id); break;
      case 3: session->reset(id); live.erase(id); break;
      default: break;
    }
  }
  void on_data(uint32_t id, BytesView data) override {
    check(live.count(id) == 1, "data for a dead stream");
    check(!data.empty(), "empty data callback");
    switch (choice() % 6) {
      case 0: break;  // hold the bytes unconsumed
      case 1: session->write(id, data.first(std::min<size_t>(data.size(), sizeof reply))); [[fallthrough]];
      case 2: case 3: session->consume(id, data.size()); break;
      case 4: session->reset(id); live.erase(id); break;
      case 5: session->close(id); session->consume(id, data.size()); break;
    }
  }
  void on_remote_fin(uint32_t id) override {
    check(live.count(id) == 1, "fin for a dead stream");
    if (choice() % 2) session->close(id);  // may end the stream via on_stream_closed
  }
  void on_stream_reset(uint32_t id) override { check(live.erase(id) == 1, "reset of a dead stream"); }
  void on_stream_closed(uint32_t id) override { check(live.erase(id) == 1, "close of a dead stream"); }
  void on_writable(uint32_t id) override {
    check(live.count(id) == 1, "writable for a dead stream");
    session->write(id, BytesView(reply, sizeof reply));
  }
  void on_go_away(uint32_t) override {}
};

void run(FuzzedDataProvider &fdp, bool client) {
  Config config;
  config.client = client;
  config.max_inbound_streams = 1 + fdp.ConsumeIntegral<uint8_t>() % 16;
  config.max_outbound_streams = 1 + fdp.ConsumeIntegral<uint8_t>() % 16;
  config.max_ack_backlog = 1 + fdp.ConsumeIntegral<uint8_t>() % 8;
  config.max_frame_payload = 1024 + fdp.ConsumeIntegral<uint16_t>();  // tiny frames would only bloat output
  config.initial_window = fdp.ConsumeBool() ? kDefaultWindow : 1024 * 1024;
  config.auto_tune_window = fdp.ConsumeBool();

  FuzzHandler handler;
  Session session(config, handler);
  handler.session = &session;
  handler.fdp = &fdp;
  Bytes out;
  bool failed = false;
  Bytes big(300 * 1024, 0x5a);

  while (fdp.remaining_bytes() > 0) {
    uint8_t op = fdp.ConsumeIntegral<uint8_t>();
    uint32_t target = handler.live.empty() ? fdp.ConsumeIntegral<uint32_t>() : *handler.live.begin();
    switch (op % 10) {
      case 0: case 1: case 2: case 3: case 4: {  // bytes from the peer
        auto chunk = fdp.ConsumeBytes<uint8_t>(fdp.ConsumeIntegralInRange<size_t>(1, 512));
        Session::Status st = session.feed(chunk);
        if (failed) check(st == Session::Status::failed, "failed session recovered");
        if (st == Session::Status::failed) {
          check(!session.error().empty(), "failure without a reason");
          failed = true;
        }
        break;
      }
      case 5: {
        uint32_t id = session.open_stream();
        if (id) {
          check((id & 1u) == (client ? 1u : 0u), "wrong id parity");
          check(handler.live.insert(id).second, "reused outbound id");
        }
        break;
      }
      case 6: session.write(target, BytesView(big).first(fdp.ConsumeIntegralInRange<size_t>(0, big.size()))); break;
      case 7: session.close(target); break;  // may call on_stream_closed, which updates live
      case 8:
        if (session.stream_count() && handler.live.count(target)) {
          session.reset(target);
          handler.live.erase(target);
        }
        break;
      case 9:
        if (op & 0x80) session.ping(op); else session.go_away(op & 3);
        break;
    }
    check(session.stream_count() == handler.live.size(), "stream count differs from live streams");
    check(session.stream_count() <= config.max_inbound_streams + config.max_outbound_streams, "too many streams");
    out.clear();
    session.take_output(out);
    // Output per step: at most one big write (plus headers) and a few control frames per input byte.
    check(out.size() <= big.size() + 64 * 1024, "output grew without bound");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  FuzzedDataProvider fdp(data, size);
  run(fdp, fdp.ConsumeBool());
  return 0;
}
