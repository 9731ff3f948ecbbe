#include "transport.hpp"

#include <chorus/plugin.hpp>
#include <nats/nats.h>
#include <sodium.h>

#include <dlfcn.h>

#include <condition_variable>
#include <thread>

namespace chorus::backbeat {

TransportFactory g_transport_factory = nullptr;

// ---------------------------------------------------------------------------------------------
// Signing

std::string base64(const unsigned char *data, size_t len) {
  std::string out(sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), data, len, sodium_base64_VARIANT_ORIGINAL);
  out.resize(std::char_traits<char>::length(out.c_str()));
  return out;
}

Signer::Signer(std::string_view hex_key) {
  if (sodium_init() < 0) throw chorus::Error(CHORUS_E_INTERNAL, "libsodium failed to initialise");
  unsigned char raw[64];
  size_t n = 0;
  if ((hex_key.size() != 64 && hex_key.size() != 128) ||
      sodium_hex2bin(raw, sizeof raw, hex_key.data(), hex_key.size(), nullptr, &n, nullptr) != 0 ||
      n * 2 != hex_key.size())
    throw chorus::Error(CHORUS_E_CONFIG, "signing_key must be 64 hex characters (Ed25519 seed) or 128 (secret key)");
  if (n == 32) {
    crypto_sign_seed_keypair(pk_, sk_, raw);
  } else {
    std::memcpy(sk_, raw, 64);
    crypto_sign_ed25519_sk_to_pk(pk_, sk_);
  }
  sodium_memzero(raw, sizeof raw);
  pk_b64_ = base64(pk_, sizeof pk_);
}

Signer::~Signer() { sodium_memzero(sk_, sizeof sk_); }

std::string Signer::sign_b64(std::string_view payload) const {
  unsigned char sig[crypto_sign_BYTES];
  crypto_sign_detached(sig, nullptr, reinterpret_cast<const unsigned char *>(payload.data()), payload.size(), sk_);
  return base64(sig, sizeof sig);
}

bool verify_signature(std::string_view payload, std::string_view sig_b64, std::string_view pk_b64) {
  if (sodium_init() < 0) return false;
  unsigned char sig[64], pk[32];
  size_t ns = 0, np = 0;
  if (sodium_base642bin(sig, sizeof sig, sig_b64.data(), sig_b64.size(), nullptr, &ns, nullptr,
                        sodium_base64_VARIANT_ORIGINAL) != 0 || ns != 64)
    return false;
  if (sodium_base642bin(pk, sizeof pk, pk_b64.data(), pk_b64.size(), nullptr, &np, nullptr,
                        sodium_base64_VARIANT_ORIGINAL) != 0 || np != 32)
    return false;
  return crypto_sign_verify_detached(sig, reinterpret_cast<const unsigned char *>(payload.data()), payload.size(), pk) == 0;
}

// ---------------------------------------------------------------------------------------------
// BufferedSender

bool BufferedSender::send(const Outgoing &o) {
  if (signer_ != nullptr) {
    const std::string sig = signer_->sign_b64(o.payload);
    return send_one(o, &sig);
  }
  return send_one(o, nullptr);
}

void BufferedSender::enqueue(Outgoing &&o) {
  if (outbox_.size() >= limit_) {
    outbox_.pop_front();
    ++dropped_;
  }
  outbox_.push_back(std::move(o));
}

void BufferedSender::publish(std::vector<Outgoing> &&batch) {
  std::lock_guard lk(mu_);
  for (Outgoing &o : batch) {
    if (connected_.load() && outbox_.empty()) {
      if (send(o)) {
        ++published_;
        continue;
      }
      ++publish_errors_;
    }
    enqueue(std::move(o));
  }
  batch.clear();
}

void BufferedSender::set_connected(bool c) {
  connected_.store(c);
  if (!c) return;
  std::lock_guard lk(mu_);
  while (connected_.load() && !outbox_.empty()) {
    if (!send(outbox_.front())) {
      ++publish_errors_;
      break;
    }
    outbox_.pop_front();
    ++published_;
    ++flushed_;
  }
}

TransportStats BufferedSender::stats() const {
  TransportStats s;
  s.connected = connected_.load();
  s.reconnects = reconnects_.load();
  s.disconnects = disconnects_.load();
  s.slow_consumer = slow_consumer_.load();
  std::lock_guard lk(mu_);
  s.published = published_;
  s.buffered = outbox_.size();
  s.dropped = dropped_;
  s.publish_errors = publish_errors_;
  s.flushed_from_buffer = flushed_;
  return s;
}

// ---------------------------------------------------------------------------------------------
// NATS (cnats)

namespace {

class NatsTransport final : public BufferedSender {
 public:
  NatsTransport(const TransportConfig &cfg, TransportListener *listener, const Signer *signer)
      : BufferedSender(cfg.buffer_limit, signer), cfg_(cfg), listener_(listener) {
    if (signer != nullptr) pk_b64_ = signer->public_key_b64();
  }

  ~NatsTransport() override { destroy_handles(); }

  void start() override {
    connector_ = std::thread([this] { connect(); });
  }

  bool stop(std::chrono::milliseconds budget) override {
    stopping_.store(true);
    const auto deadline = std::chrono::steady_clock::now() + budget;
    if (connector_.joinable()) connector_.join();
    if (nc_ == nullptr) return true;
    if (connected()) natsConnection_FlushTimeout(nc_, std::max<int64_t>(1, std::min<int64_t>(500, budget.count() / 4)));
    if (sub_ != nullptr && natsSubscription_Unsubscribe(sub_) == NATS_OK) {
      std::unique_lock lk(mu_);
      cv_.wait_until(lk, deadline - budget / 2, [&] { return sub_done_; });
    } else {
      std::lock_guard lk(mu_);
      sub_done_ = true;  // never delivered anything that could still be running
    }
    natsConnection_Close(nc_);
    std::unique_lock lk(mu_);
    cv_.wait_until(lk, deadline, [&] { return closed_ && sub_done_; });
    const bool clean = closed_ && sub_done_;
    lk.unlock();
    if (clean) destroy_handles();
    return clean;
  }

 protected:
  bool send_one(const Outgoing &o, const std::string *sig) override {
    if (nc_ == nullptr) return false;
    const std::string &subject = o.is_frame ? cfg_.beat_subject : cfg_.status_subject;
    natsStatus s;
    if (sig == nullptr) {
      s = natsConnection_Publish(nc_, subject.c_str(), o.payload.data(), static_cast<int>(o.payload.size()));
    } else {
      natsMsg *m = nullptr;
      s = natsMsg_Create(&m, subject.c_str(), nullptr, o.payload.data(), static_cast<int>(o.payload.size()));
      if (s == NATS_OK) s = natsMsgHeader_Set(m, "Backbeat-Signature", sig->c_str());
      if (s == NATS_OK) s = natsMsgHeader_Set(m, "Backbeat-Public-Key", pk_b64_.c_str());
      if (s == NATS_OK) s = natsConnection_PublishMsg(nc_, m);
      natsMsg_Destroy(m);
    }
    return s == NATS_OK;
  }

 private:
  void connect() {
    natsStatus s = natsOptions_Create(&opts_);
    if (s == NATS_OK) s = natsOptions_SetURL(opts_, cfg_.url.c_str());
    if (s == NATS_OK) s = natsOptions_SetName(opts_, cfg_.client_name.c_str());
    if (s == NATS_OK) s = natsOptions_SetTimeout(opts_, cfg_.connect_timeout_ms);
    if (s == NATS_OK) s = natsOptions_SetAllowReconnect(opts_, true);
    if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts_, -1);
    if (s == NATS_OK) s = natsOptions_SetCustomReconnectDelay(opts_, &NatsTransport::reconnect_delay, this);
    if (s == NATS_OK) s = natsOptions_SetNoEcho(opts_, true);  // a pulsing agent does not hear itself
    if (s == NATS_OK) s = natsOptions_SetMaxPendingMsgs(opts_, cfg_.max_pending_frames);
    if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(opts_, &NatsTransport::on_disconnected, this);
    if (s == NATS_OK) s = natsOptions_SetReconnectedCB(opts_, &NatsTransport::on_reconnected, this);
    if (s == NATS_OK) s = natsOptions_SetClosedCB(opts_, &NatsTransport::on_closed, this);
    if (s == NATS_OK) s = natsOptions_SetErrorHandler(opts_, &NatsTransport::on_error, this);
    if (s == NATS_OK) s = natsOptions_SetRetryOnFailedConnect(opts_, true, &NatsTransport::on_connected, this);
    if (s != NATS_OK) {
      report(std::string("NATS options: ") + natsStatus_GetText(s));
      return;
    }
    natsConnection *nc = nullptr;
    s = natsConnection_Connect(&nc, opts_);
    if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
      report(std::string("NATS connect to ") + cfg_.url + " failed: " + natsStatus_GetText(s) +
             "; running without beat synchronisation");
      std::lock_guard lk(mu_);
      closed_ = true;
      sub_done_ = true;
      return;
    }
    nc_ = nc;
    natsSubscription *sub = nullptr;
    natsStatus ss = natsConnection_Subscribe(&sub, nc_, cfg_.beat_subject.c_str(), &NatsTransport::on_msg, this);
    if (ss == NATS_OK) {
      sub_ = sub;
      natsSubscription_SetOnCompleteCB(sub_, &NatsTransport::on_sub_complete, this);
      natsSubscription_SetPendingLimits(sub_, cfg_.max_pending_frames, 64 * 1024 * 1024);
    } else {
      std::lock_guard lk(mu_);
      sub_done_ = true;
      report(std::string("NATS subscribe failed: ") + natsStatus_GetText(ss));
    }
    if (s == NATS_OK) {
      set_connected(true);
      if (!stopping_.load()) listener_->on_connection(true, false);
    } else {
      report("NATS server " + cfg_.url + " unreachable; retrying in the background, beats derived locally");
    }
  }

  void report(const std::string &what) {
    if (!stopping_.load()) listener_->on_transport_error(what);
  }

  void destroy_handles() {
    if (sub_ != nullptr) natsSubscription_Destroy(sub_);
    sub_ = nullptr;
    if (nc_ != nullptr) natsConnection_Destroy(nc_);
    nc_ = nullptr;
    if (opts_ != nullptr) natsOptions_Destroy(opts_);
    opts_ = nullptr;
  }

  static int64_t reconnect_delay(natsConnection *, int attempts, void *closure) {
    auto *t = static_cast<NatsTransport *>(closure);
    int64_t d = t->cfg_.reconnect_wait_ms;
    for (int i = 1; i < attempts && d < t->cfg_.reconnect_wait_max_ms; ++i) d *= 2;
    d = std::min(d, t->cfg_.reconnect_wait_max_ms);
    const int64_t jitter = d / 10 > 0 ? static_cast<int64_t>(randombytes_uniform(static_cast<uint32_t>(d / 10 + 1))) : 0;
    return d + jitter;
  }
  static void on_connected(natsConnection *, void *closure) {
    auto *t = static_cast<NatsTransport *>(closure);
    t->set_connected(true);
    if (!t->stopping_.load()) t->listener_->on_connection(true, false);
  }
  static void on_reconnected(natsConnection *, void *closure) {
    auto *t = static_cast<NatsTransport *>(closure);
    ++t->reconnects_;
    t->set_connected(true);
    if (!t->stopping_.load()) t->listener_->on_connection(true, true);
  }
  static void on_disconnected(natsConnection *, void *closure) {
    auto *t = static_cast<NatsTransport *>(closure);
    if (!t->connected()) return;  // failed (re)connect attempts report nothing new
    ++t->disconnects_;
    t->set_connected(false);
    if (!t->stopping_.load()) t->listener_->on_connection(false, false);
  }
  static void on_closed(natsConnection *, void *closure) {
    auto *t = static_cast<NatsTransport *>(closure);
    t->set_connected(false);
    std::lock_guard lk(t->mu_);
    t->closed_ = true;
    t->cv_.notify_all();
  }
  static void on_sub_complete(void *closure) {
    auto *t = static_cast<NatsTransport *>(closure);
    std::lock_guard lk(t->mu_);
    t->sub_done_ = true;
    t->cv_.notify_all();
  }
  static void on_error(natsConnection *, natsSubscription *, natsStatus err, void *closure) {
    auto *t = static_cast<NatsTransport *>(closure);
    if (err == NATS_SLOW_CONSUMER) ++t->slow_consumer_;
    t->report(std::string("NATS: ") + natsStatus_GetText(err));
  }
  static void on_msg(natsConnection *, natsSubscription *, natsMsg *msg, void *closure) {
    auto *t = static_cast<NatsTransport *>(closure);
    if (!t->stopping_.load()) {
      const char *data = natsMsg_GetData(msg);
      const int len = natsMsg_GetDataLength(msg);
      t->listener_->on_frame(std::string_view(data != nullptr ? data : "", len > 0 ? static_cast<size_t>(len) : 0));
    }
    natsMsg_Destroy(msg);
  }

  TransportConfig cfg_;
  TransportListener *listener_;
  std::string pk_b64_;
  std::thread connector_;
  std::atomic<bool> stopping_{false};
  natsOptions *opts_ = nullptr;
  natsConnection *nc_ = nullptr;
  natsSubscription *sub_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  bool closed_ = false;
  bool sub_done_ = false;
};

}  // namespace

// libnats keeps library-wide threads (timers, async callbacks) alive after the last connection is
// destroyed, and a plugin must not tear down process-wide library state other code may share
// (nats_Close). So libnats is pinned in memory: when the host unloads this plugin (or at exit), the
// library's threads never run unmapped code.
void pin_libnats() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void *>(&natsConnection_Connect), &info) == 0 || info.dli_fname == nullptr) return;
  void *h = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
  if (h != nullptr) dlclose(h);  // drops only this reference; NODELETE stays
}

std::unique_ptr<Transport> make_nats_transport(const TransportConfig &cfg, TransportListener *listener,
                                               const Signer *signer) {
  if (g_transport_factory != nullptr) return g_transport_factory(cfg, listener, signer);
  pin_libnats();
  return std::make_unique<NatsTransport>(cfg, listener, signer);
}

}  // namespace chorus::backbeat
