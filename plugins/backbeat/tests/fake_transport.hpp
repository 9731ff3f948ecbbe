// An in-memory Transport for unit tests: records what the plugin publishes (through the real
// BufferedSender, so outbox/ordering/drop logic is the production code), lets the test switch
// connectivity and deliver BeatFrames as if they came from NATS.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "transport.hpp"

namespace chorus::backbeat::testing {

class FakeTransport final : public BufferedSender {
 public:
  FakeTransport(const TransportConfig &cfg, TransportListener *l, const Signer *signer)
      : BufferedSender(cfg.buffer_limit, signer), cfg(cfg), listener(l) {}
  void start() override { started = true; }
  bool stop(std::chrono::milliseconds) override {
    stopped = true;
    return true;
  }
  // Test controls.
  void connect(bool reconnect = false) {
    if (reconnect) ++reconnects_;
    set_connected(true);
    listener->on_connection(true, reconnect);
  }
  void disconnect() {
    ++disconnects_;
    set_connected(false);
    listener->on_connection(false, false);
  }
  void deliver(const std::string &frame) { listener->on_frame(frame); }
  struct Sent {
    std::string subject, payload, signature;
  };
  std::vector<Sent> take() {
    std::lock_guard lk(mu);
    return std::exchange(sent, {});
  }
  std::vector<Sent> claims() {
    std::vector<Sent> out;
    for (auto &s : take())
      if (s.subject == cfg.status_subject) out.push_back(std::move(s));
    return out;
  }
  bool fail_sends = false;
  TransportConfig cfg;
  TransportListener *listener;
  bool started = false, stopped = false;

 protected:
  bool send_one(const Outgoing &o, const std::string *sig) override {
    if (fail_sends) return false;
    std::lock_guard lk(mu);
    sent.push_back({o.is_frame ? cfg.beat_subject : cfg.status_subject, o.payload, sig != nullptr ? *sig : ""});
    return true;
  }

 private:
  std::mutex mu;
  std::vector<Sent> sent;
};

// Installs itself as the transport factory for its lifetime; `last` is the transport created.
struct FakeTransportScope {
  static inline FakeTransport *last = nullptr;
  FakeTransportScope() {
    last = nullptr;
    g_transport_factory = [](const TransportConfig &c, TransportListener *l, const Signer *s) -> std::unique_ptr<Transport> {
      auto t = std::make_unique<FakeTransport>(c, l, s);
      last = t.get();
      return t;
    };
  }
  ~FakeTransportScope() {
    g_transport_factory = nullptr;
    last = nullptr;
  }
};

}  // namespace chorus::backbeat::testing
