// An in-memory Dht (content.hpp) for the store's tests: several FakeDht nodes share one FakeNetwork,
// so what one node stores another retrieves. Role-encrypted content is modelled by role names: the
// network knows the roles it can encrypt to (recipients), each node holds the keys of some roles, and
// retrieve answers CHORUS_E_DHT_NOT_AUTHORISED on a node without the content's role key.
//
// Completions run on the node's own thread, like the real dht's. Tests can inject a status for the
// next call of an operation, or hold an operation's completions until release() (a slow network).
#pragma once

#include <sodium.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <chorus/services/dht_v1.h>
#include <nlohmann/json.hpp>

#include "content.hpp"

namespace chorus::ucxi::testing {

using Bytes = std::vector<uint8_t>;

struct FakeNetwork {
  std::mutex mu;
  std::set<std::string> recipients;  // roles content can be encrypted to
  std::map<std::string, Bytes> records;
  struct Content {
    std::string role;
    Bytes bytes;
  };
  std::map<std::string, Content> contents;
  std::map<Bytes, std::map<std::string, std::string>> providers;  // key -> peer id -> its address

  explicit FakeNetwork(std::set<std::string> roles) : recipients(std::move(roles)) {}
};

class FakeDht final : public Dht {
 public:
  enum Op { kPutValue, kGetValue, kProvide, kFindProviders, kStore, kRetrieve, kOpCount };

  FakeDht(std::shared_ptr<FakeNetwork> net, std::string peer_id, std::set<std::string> role_keys)
      : net_(std::move(net)), peer_id_(std::move(peer_id)), keys_(std::move(role_keys)), thread_([this] { loop(); }) {}
  ~FakeDht() override {
    {
      std::lock_guard lock(mu_);
      quit_ = true;
      // As the real dht at stop: what is still held completes with CANCELLED.
      for (auto &[op, fn] : held_) queue_.push_back([fn = std::move(fn)] { fn(CHORUS_E_CANCELLED); });
      held_.clear();
    }
    cv_.notify_all();
    thread_.join();
  }

  // The next call of op completes with st (and message) instead of its result.
  void fail_next(Op op, chorus_status st, std::string message = "injected failure") {
    std::lock_guard lock(mu_);
    injected_[op].emplace_back(st, std::move(message));
  }
  // What a successful put_value says about its copies: {"replicas": n}, or nothing when n < 0 (as a
  // dht before that field).
  void set_put_replicas(int n) { put_replicas_ = n; }
  // While on, completions of op wait until release_held().
  void hold(Op op, bool on) {
    std::lock_guard lock(mu_);
    holding_[op] = on;
  }
  size_t held() {
    std::lock_guard lock(mu_);
    return held_.size();
  }
  // Waits (on the condition, bounded) until n completions are held.
  bool wait_held(size_t n) {
    std::unique_lock lock(mu_);
    return held_cv_.wait_for(lock, std::chrono::seconds(10), [&] { return held_.size() >= n; });
  }
  void release_held() {
    std::lock_guard lock(mu_);
    for (auto &[op, fn] : held_) queue_.push_back([fn = std::move(fn)] { fn(CHORUS_OK); });
    held_.clear();
    cv_.notify_all();
  }
  // Returns once every completion queued before the call has run.
  void drain() {
    std::unique_lock lock(mu_);
    bool ran = false;
    queue_.push_back([&] {
      std::lock_guard inner(mu_);
      ran = true;
      drained_cv_.notify_all();
    });
    cv_.notify_all();
    drained_cv_.wait(lock, [&] { return ran; });
  }
  uint64_t calls(Op op) const { return calls_[op].load(); }
  const std::string &peer_id() const { return peer_id_; }

  void put_value(const std::string &key, Bytes value, uint32_t, Result done) override {
    submit(kPutValue, std::move(done), [this, key, value = std::move(value)](Result &r) {
      if (key.rfind("/chorus/", 0) != 0) return r(CHORUS_E_INVALID_ARG, "not a /chorus/ key", {});
      std::lock_guard lock(net_->mu);
      net_->records[key] = value;
      const int n = put_replicas_.load();
      if (n < 0) return r(CHORUS_OK, "", {});
      const std::string data = nlohmann::json{{"replicas", n}}.dump();
      r(CHORUS_OK, "", Bytes(data.begin(), data.end()));
    });
  }
  void get_value(const std::string &key, uint32_t, Result done) override {
    submit(kGetValue, std::move(done), [this, key](Result &r) {
      std::lock_guard lock(net_->mu);
      auto it = net_->records.find(key);
      if (it == net_->records.end()) return r(CHORUS_E_NOT_FOUND, "no value", {});
      r(CHORUS_OK, "", it->second);
    });
  }
  void provide(const Bytes &key, uint32_t, Result done) override {
    submit(kProvide, std::move(done), [this, key](Result &r) {
      std::lock_guard lock(net_->mu);
      net_->providers[key][peer_id_] = "/ip4/127.0.0.1/tcp/4001/p2p/" + peer_id_;
      r(CHORUS_OK, "", {});
    });
  }
  void find_providers(const Bytes &key, uint32_t, Result done) override {
    submit(kFindProviders, std::move(done), [this, key](Result &r) {
      std::lock_guard lock(net_->mu);
      auto it = net_->providers.find(key);
      if (it == net_->providers.end() || it->second.empty()) return r(CHORUS_E_NOT_FOUND, "no provider", {});
      nlohmann::json out = nlohmann::json::array();
      for (const auto &[peer, addr] : it->second) out.push_back({{"peer_id", peer}, {"addrs", {addr}}});
      const std::string text = out.dump();
      r(CHORUS_OK, "", Bytes(text.begin(), text.end()));
    });
  }
  void store(const std::string &key, const std::string &role, Bytes content, uint32_t, Result done) override {
    submit(kStore, std::move(done), [this, key, role, content = std::move(content)](Result &r) {
      std::lock_guard lock(net_->mu);
      if (net_->recipients.count(role) == 0) return r(CHORUS_E_INVALID_ARG, "no recipient for role '" + role + "'", {});
      net_->contents[key] = FakeNetwork::Content{role, content};
      const std::string hash = hex_sha256(content);
      r(CHORUS_OK, "", Bytes(hash.begin(), hash.end()));
    });
  }
  void retrieve(const std::string &key, uint32_t, Result done) override {
    submit(kRetrieve, std::move(done), [this, key](Result &r) {
      std::lock_guard lock(net_->mu);
      auto it = net_->contents.find(key);
      if (it == net_->contents.end()) return r(CHORUS_E_NOT_FOUND, "no content", {});
      if (keys_.count(it->second.role) == 0)
        return r(CHORUS_E_DHT_NOT_AUTHORISED, "not authorised: no key for role '" + it->second.role + "'", {});
      r(CHORUS_OK, "", it->second.bytes);
    });
  }

  static std::string hex_sha256(const Bytes &b) {
    uint8_t h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, b.data(), b.size());
    static const char digits[] = "0123456789abcdef";
    std::string s;
    for (uint8_t x : h) {
      s += digits[x >> 4];
      s += digits[x & 15];
    }
    return s;
  }

 private:
  // work computes the result when the call is made (so the network's state is the one at the call);
  // the completion is queued, or held, and always runs on this node's thread.
  void submit(Op op, Result done, std::function<void(Result &)> work) {
    ++calls_[op];
    chorus_status st = CHORUS_OK;
    std::string msg;
    Bytes data;
    Result capture = [&](chorus_status s, std::string m, Bytes d) {
      st = s;
      msg = std::move(m);
      data = std::move(d);
    };
    std::optional<std::pair<chorus_status, std::string>> injected;
    {
      std::lock_guard lock(mu_);
      if (!injected_[op].empty()) {
        injected = std::move(injected_[op].front());
        injected_[op].pop_front();
      }
    }
    if (injected) {
      st = injected->first;
      msg = injected->second;
    } else {
      work(capture);
    }
    auto fn = [done = std::move(done), st, msg, data](chorus_status override_st) {
      if (override_st != CHORUS_OK) return done(override_st, "dht stopped", {});
      done(st, msg, data);
    };
    std::lock_guard lock(mu_);
    if (holding_[op]) {
      held_.emplace_back(op, std::move(fn));
      held_cv_.notify_all();
      return;
    }
    queue_.push_back([fn = std::move(fn)] { fn(CHORUS_OK); });
    cv_.notify_all();
  }

  void loop() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return quit_ || !queue_.empty(); });
      if (queue_.empty()) return;
      auto fn = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      fn();
      lock.lock();
    }
  }

  std::atomic<int> put_replicas_{-1};
  std::shared_ptr<FakeNetwork> net_;
  std::string peer_id_;
  std::set<std::string> keys_;
  std::array<std::atomic<uint64_t>, kOpCount> calls_{};
  std::mutex mu_;
  std::condition_variable cv_, held_cv_, drained_cv_;
  bool quit_ = false;
  std::deque<std::function<void()>> queue_;
  std::array<bool, kOpCount> holding_{};
  std::vector<std::pair<Op, std::function<void(chorus_status)>>> held_;
  std::array<std::deque<std::pair<chorus_status, std::string>>, kOpCount> injected_;
  std::thread thread_;  // last: starts after every member above exists
};

}  // namespace chorus::ucxi::testing
