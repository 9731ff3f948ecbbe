// Getting BACKBEAT messages on and off the wire: the Transport interface, the bounded outbox that
// keeps what must not be lost while disconnected, Ed25519 signing, and the NATS implementation.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine.hpp"

namespace chorus::backbeat {

// Ed25519 signatures over the exact payload bytes (libsodium). Sent as NATS headers
// Backbeat-Signature (base64 of the 64-byte signature) and Backbeat-Public-Key (base64 of the key).
class Signer {
 public:
  // key: 64 hex chars (32-byte seed) or 128 hex chars (64-byte secret key). Throws chorus::Error.
  explicit Signer(std::string_view hex_key);
  std::string sign_b64(std::string_view payload) const;
  const std::string &public_key_b64() const noexcept { return pk_b64_; }
  ~Signer();

 private:
  unsigned char sk_[64];
  unsigned char pk_[32];
  std::string pk_b64_;
};
std::string base64(const unsigned char *data, size_t len);
bool verify_signature(std::string_view payload, std::string_view sig_b64, std::string_view pk_b64);

struct TransportConfig {
  std::string url = "nats://backbeat-nats:4222";
  std::string beat_subject;    // <prefix>.beat.<cluster>
  std::string status_subject;  // <prefix>.status.<cluster>.<agent>
  std::string client_name = "chorus-backbeat";
  int64_t connect_timeout_ms = 2000;
  int64_t reconnect_wait_ms = 250;       // first retry delay; doubles per failed round
  int64_t reconnect_wait_max_ms = 8000;  // backoff cap
  size_t buffer_limit = 10000;           // messages kept while disconnected; older ones are dropped
  int max_pending_frames = 1024;         // inbound frames queued before NATS reports a slow consumer
};

class TransportListener {
 public:
  virtual ~TransportListener() = default;
  virtual void on_frame(std::string_view payload) = 0;
  virtual void on_connection(bool connected, bool reconnect) = 0;
  virtual void on_transport_error(std::string_view what) = 0;
};

struct TransportStats {
  bool connected = false;
  uint64_t reconnects = 0, disconnects = 0;
  uint64_t published = 0, buffered = 0, dropped = 0, publish_errors = 0, flushed_from_buffer = 0;
  uint64_t slow_consumer = 0;
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual void start() = 0;                                  // begin connecting; never blocks long
  virtual bool stop(std::chrono::milliseconds budget) = 0;   // false: callbacks may still arrive (leak it)
  virtual void publish(std::vector<Outgoing> &&batch) = 0;   // thread-safe; buffers while disconnected
  virtual TransportStats stats() const = 0;
};

// Publishing with a bounded outbox: while disconnected (or when a send fails) messages queue in
// order, the oldest dropped beyond the limit (counted); on (re)connection the outbox is flushed
// first, so order is kept. Subclasses provide send_one.
class BufferedSender : public Transport {
 public:
  BufferedSender(size_t limit, const Signer *signer) : limit_(limit == 0 ? 1 : limit), signer_(signer) {}
  void publish(std::vector<Outgoing> &&batch) override;
  TransportStats stats() const override;

 protected:
  // Sends one message; false = not sent (it stays queued).
  virtual bool send_one(const Outgoing &o, const std::string *sig) = 0;
  void set_connected(bool c);  // true flushes the outbox
  bool connected() const noexcept { return connected_.load(); }
  std::atomic<uint64_t> reconnects_{0}, disconnects_{0}, slow_consumer_{0};

 private:
  void enqueue(Outgoing &&o);
  bool send(const Outgoing &o);
  size_t limit_;
  const Signer *signer_;
  std::atomic<bool> connected_{false};
  mutable std::mutex mu_;
  std::deque<Outgoing> outbox_;
  uint64_t published_ = 0, dropped_ = 0, publish_errors_ = 0, flushed_ = 0;
};

std::unique_ptr<Transport> make_nats_transport(const TransportConfig &cfg, TransportListener *listener,
                                               const Signer *signer);

// Tests replace the NATS transport by setting this (constant-initialised; never set in the plugin).
using TransportFactory = std::unique_ptr<Transport> (*)(const TransportConfig &, TransportListener *, const Signer *);
extern TransportFactory g_transport_factory;

}  // namespace chorus::backbeat
