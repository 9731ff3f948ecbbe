// bench.gossip-load: a benchmark-only plugin that requires chorus.pubsub ^1 and drives it over HTTP, so
// bench/gossip/run.py can load a real agent the way an application would. Written only against
// pubsub_v1.h and the SDK, like any third-party consumer of the service.
//
// Routes (POST, JSON body, JSON answer; failures: {"ok":false,"status","status_name","error"} with 400
// for a bad request, 409 when a receive already runs on the topic, 502 when the service refused,
// 503 while stopping):
//
//   /bench/gossip/publish {topic, count, size, rate}
//       -> {ok, sent, failed, first_error, elapsed_ms}
//       publish_raw `count` messages of `size` bytes (>= 8) at `rate` messages per second (0: each as
//       soon as the previous publish_raw returned), from a thread of its own; answered when the last
//       one was published. elapsed_ms: first publish to the return of the last.
//   /bench/gossip/receive {topic, count, timeout_ms, idle_ms}
//       -> {ok, received, duplicates, elapsed_ms, msgs_per_s, p50_ms, p99_ms}
//       subscribes to the topic and answers when `count` distinct messages arrived, at timeout_ms
//       (default 60000), or, with idle_ms > 0, once no message arrived for idle_ms after the first one
//       (a publisher faster than the receiver loses messages to its bounded send queue, and then
//       `count` never arrives); the HTTP thread is never held meanwhile. The subscription is live when
//       the answer to a GET /bench/gossip/armed?topic=T says {"armed":true}.
//
// Payload (the same as tests/interop/js/gossip_peer.mjs's publish_many, so chorus and js nodes can feed
// each other): bytes 0-7 the big-endian microseconds since the Unix epoch (realtime clock) at publish,
// 8-15 a big-endian message index, 16-23 a random number of this process, then byte i = i & 0xff.
// Latency = arrival (realtime clock, on the gossip thread in the handler) - the publish time in the
// payload. elapsed_ms runs from the earliest publish time among the received messages to the last
// arrival; msgs_per_s = received / elapsed. duplicates counts payloads seen before (the service must
// never hand one over twice). Percentiles are nearest-rank. The node's own publications (local = 1)
// are not counted.
#include <chorus/plugin.hpp>
#include <chorus/services/pubsub_v1.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

namespace {

using json = nlohmann::json;
using Exchange = std::shared_ptr<chorus::HttpExchange>;
using SteadyClock = std::chrono::steady_clock;

constexpr size_t kMaxCount = 10'000'000;
constexpr size_t kMaxSize = 16 * 1024 * 1024;
constexpr size_t kKeyBytes = 24;  // timestamp, index, process nonce: unique per message

void reply(const Exchange &ex, int code, const json &body) {
  if (ex && *ex) ex->respond(code, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace));
}

json failure(chorus_status s, std::string_view why) {
  return {{"ok", false}, {"status", s}, {"status_name", chorus::status_name(s)}, {"error", std::string(why)}};
}

uint64_t realtime_us() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

void put_be64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; --i, v >>= 8) p[i] = static_cast<uint8_t>(v);
}

uint64_t get_be64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

json percentile(const std::vector<double> &sorted, double p) {
  if (sorted.empty()) return nullptr;
  const double rank = std::ceil(p * static_cast<double>(sorted.size())) - 1;
  const size_t i = static_cast<size_t>(std::clamp(rank, 0.0, static_cast<double>(sorted.size() - 1)));
  return sorted[i];
}

class GossipLoad;

// One /bench/gossip/receive: a subscription counting messages until `count` or the deadline.
struct ReceiveJob {
  GossipLoad *owner = nullptr;
  std::string topic;
  size_t count = 0;
  Exchange ex;

  std::mutex mu;  // everything below: the handler runs on the gossip thread, the deadline on a host thread
  std::vector<double> latencies_ms;
  std::unordered_set<std::string> seen;
  uint64_t duplicates = 0;
  uint64_t earliest_sent_us = UINT64_MAX;
  uint64_t last_arrival_us = 0;
  SteadyClock::time_point last_arrival_steady{};
  bool finished = false;      // no more counting; the answer is on its way
  bool subscribed = false;    // `sub` is valid
  bool unsubscribed = false;
  uint64_t sub = 0;
  // Set once right after the timer starts, read by whoever finishes the job (possibly a timer).
  std::atomic<uint64_t> timer{0};       // the deadline
  std::atomic<uint64_t> idle_timer{0};  // checks for idle_ms without messages

  json answer_locked() const {
    std::vector<double> sorted = latencies_ms;
    std::sort(sorted.begin(), sorted.end());
    const size_t received = sorted.size();
    const double elapsed_ms =
        received > 0 && last_arrival_us > earliest_sent_us ? static_cast<double>(last_arrival_us - earliest_sent_us) / 1000.0
                                                            : 0.0;
    return {{"ok", true},
            {"received", received},
            {"duplicates", duplicates},
            {"elapsed_ms", elapsed_ms},
            {"msgs_per_s", elapsed_ms > 0 ? static_cast<double>(received) / (elapsed_ms / 1000.0) : 0.0},
            {"p50_ms", percentile(sorted, 0.5)},
            {"p99_ms", percentile(sorted, 0.99)}};
  }
};

class GossipLoad final : public chorus::Plugin {
 public:
  GossipLoad(chorus::Host &host, std::string_view config) : host_(host) {
    const json cfg = json::parse(config.empty() ? std::string_view("{}") : config, nullptr, false);
    if (!cfg.is_discarded() && !cfg.is_null() && !(cfg.is_object() && cfg.empty()))
      throw chorus::Error(CHORUS_E_CONFIG, "bench.gossip-load takes no configuration");
    std::random_device rd;
    nonce_ = (static_cast<uint64_t>(rd()) << 32) ^ rd();
    host_.route("*", "/bench/gossip/", CHORUS_ROUTE_PREFIX, [this](const chorus::HttpRequest &req, chorus::HttpExchange ex) {
      handle(std::string(req.path().substr(std::strlen("/bench/gossip/"))), req.query(), req.body(),
             std::make_shared<chorus::HttpExchange>(std::move(ex)));
    });
  }

  void start() override {
    ref_ = host_.acquire<chorus_pubsub_v1>(CHORUS_PUBSUB_SERVICE, "^1");
    t_ = ref_.table();
    s_ = ref_.self();
    host_.info("gossip load generator ready: routes under /bench/gossip/");
  }

  void stop(std::chrono::milliseconds /*budget*/) override {
    stopping_ = true;
    std::map<std::string, std::shared_ptr<ReceiveJob>> jobs;
    std::list<Publisher> publishers;
    {
      std::lock_guard lk(mu_);
      jobs.swap(receives_);
      publishers.swap(publishers_);
    }
    for (auto &[topic, job] : jobs) finish(job, /*on_gossip_thread=*/false, /*stopping=*/true);
    // Publishers see stopping_ after their current publish_raw (which never waits on the network).
    for (auto &p : publishers)
      if (p.thread.joinable()) p.thread.join();
    t_ = nullptr;
    s_ = nullptr;
    ref_.reset();
  }

 private:
  struct Publisher {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done = std::make_shared<std::atomic<bool>>(false);
  };

  void handle(const std::string &call, std::string_view query, std::string_view body_text, const Exchange &ex) {
    if (stopping_ || t_ == nullptr) return reply(ex, 503, failure(CHORUS_E_UNAVAILABLE, "stopping"));
    if (call == "armed") return do_armed(query, ex);
    json body = body_text.empty() ? json::object() : json::parse(body_text, nullptr, false);
    if (body.is_discarded() || !body.is_object())
      return reply(ex, 400, failure(CHORUS_E_INVALID_ARG, "the body must be a JSON object"));
    try {
      if (call == "publish") return do_publish(body, ex);
      if (call == "receive") return do_receive(body, ex);
      reply(ex, 404, failure(CHORUS_E_NOT_FOUND, "no such call: " + call));
    } catch (const json::exception &e) {  // a field of the wrong type
      reply(ex, 400, failure(CHORUS_E_INVALID_ARG, e.what()));
    }
  }

  static bool topic_of(const json &b, std::string &topic) {
    if (!b.contains("topic") || !b["topic"].is_string()) return false;
    topic = b["topic"].get<std::string>();
    return !topic.empty() && topic.size() <= CHORUS_PUBSUB_TOPIC_MAX;
  }

  // ---- publish ----

  void do_publish(const json &b, const Exchange &ex) {
    std::string topic;
    if (!topic_of(b, topic)) return reply(ex, 400, failure(CHORUS_E_INVALID_ARG, "missing or bad topic"));
    const uint64_t count = b.value("count", uint64_t{1});
    const uint64_t size = b.value("size", uint64_t{1024});
    const double rate = b.value("rate", 0.0);
    if (count < 1 || count > kMaxCount) return reply(ex, 400, failure(CHORUS_E_INVALID_ARG, "count out of range"));
    if (size < 8 || size > kMaxSize) return reply(ex, 400, failure(CHORUS_E_INVALID_ARG, "size must be 8 .. 16 MiB"));
    if (!(rate >= 0)) return reply(ex, 400, failure(CHORUS_E_INVALID_ARG, "rate must be >= 0"));

    std::lock_guard lk(mu_);
    // Reap the publishers that have answered.
    for (auto it = publishers_.begin(); it != publishers_.end();) {
      if (it->done->load()) {
        it->thread.join();
        it = publishers_.erase(it);
      } else {
        ++it;
      }
    }
    Publisher &p = publishers_.emplace_back();
    p.thread = std::thread([this, ex, topic, count, size, rate, done = p.done] {
      publish_loop(ex, topic, count, size, rate);
      done->store(true);
    });
  }

  void publish_loop(const Exchange &ex, const std::string &topic, uint64_t count, uint64_t size, double rate) {
    std::vector<uint8_t> payload(size);
    for (size_t i = kKeyBytes; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i & 0xff);
    if (size >= 24) put_be64(payload.data() + 16, nonce_);
    uint64_t sent = 0, failed = 0;
    std::string first_error;
    const auto t0 = SteadyClock::now();
    for (uint64_t i = 0; i < count && !stopping_; ++i) {
      if (rate > 0) {
        const auto due = t0 + std::chrono::duration_cast<SteadyClock::duration>(
                                  std::chrono::duration<double>(static_cast<double>(i) / rate));
        std::this_thread::sleep_until(due);
      }
      if (size >= 16) put_be64(payload.data() + 8, index_.fetch_add(1));
      put_be64(payload.data(), realtime_us());
      chorus::ErrorBuffer err;
      const chorus_status st =
          t_->publish_raw(s_, topic.c_str(), payload.data(), payload.size(), nullptr, 0, nullptr, err.get());
      if (st == CHORUS_OK) {
        ++sent;
      } else {
        ++failed;
        if (first_error.empty())
          first_error = std::string(chorus::status_name(st)) + (err.text().empty() ? "" : ": " + std::string(err.text()));
      }
    }
    const double elapsed_ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
    if (stopping_) return reply(ex, 503, failure(CHORUS_E_UNAVAILABLE, "stopping"));
    reply(ex, 200,
          {{"ok", true},
           {"sent", sent},
           {"failed", failed},
           {"first_error", first_error.empty() ? json(nullptr) : json(first_error)},
           {"elapsed_ms", elapsed_ms}});
  }

  // ---- receive ----

  void do_receive(const json &b, const Exchange &ex) {
    std::string topic;
    if (!topic_of(b, topic)) return reply(ex, 400, failure(CHORUS_E_INVALID_ARG, "missing or bad topic"));
    const uint64_t count = b.value("count", uint64_t{1});
    const uint64_t timeout_ms = b.value("timeout_ms", uint64_t{60000});
    const uint64_t idle_ms = b.value("idle_ms", uint64_t{0});
    if (count < 1 || count > kMaxCount) return reply(ex, 400, failure(CHORUS_E_INVALID_ARG, "count out of range"));

    auto job = std::make_shared<ReceiveJob>();
    job->owner = this;
    job->topic = topic;
    job->count = count;
    job->ex = ex;
    job->latencies_ms.reserve(static_cast<size_t>(count));
    job->seen.reserve(static_cast<size_t>(count));
    {
      std::lock_guard lk(mu_);
      if (receives_.count(topic))
        return reply(ex, 409, failure(CHORUS_E_BUSY, "a receive is already running on " + topic));
      receives_[topic] = job;
    }
    std::weak_ptr<ReceiveJob> weak = job;
    job->timer = host_.timer(std::chrono::milliseconds(timeout_ms), std::chrono::milliseconds(0), [this, weak] {
      if (auto j = weak.lock()) finish(j, false, false);
    });
    if (idle_ms > 0) {
      const auto idle = std::chrono::milliseconds(idle_ms);
      const auto period = std::chrono::milliseconds(std::max<uint64_t>(idle_ms / 4, 1));
      job->idle_timer = host_.timer(period, period, [this, weak, idle] {
        auto j = weak.lock();
        if (!j) return;
        bool idle_now = false;
        {
          std::lock_guard lk(j->mu);
          idle_now = !j->latencies_ms.empty() && SteadyClock::now() - j->last_arrival_steady >= idle;
        }
        if (idle_now) finish(j, false, false);
      });
    }
    chorus::ErrorBuffer err;
    uint64_t sub = 0;
    const chorus_status st = t_->subscribe(s_, topic.c_str(), &GossipLoad::on_message, job.get(), &sub, err.get());
    if (st != CHORUS_OK) {
      {
        std::lock_guard lk(mu_);
        receives_.erase(topic);
      }
      host_.cancel_timer(job->timer);
      if (job->idle_timer != 0) host_.cancel_timer(job->idle_timer);
      std::lock_guard lk(job->mu);
      job->finished = true;
      return reply(ex, 502, failure(st, "subscribe: " + std::string(err.text())));
    }
    bool finished_early = false;
    {
      std::lock_guard lk(job->mu);
      job->sub = sub;
      job->subscribed = true;
      finished_early = job->finished;
    }
    if (finished_early) unsubscribe(job);  // the count was reached before subscribe returned
  }

  void do_armed(std::string_view query, const Exchange &ex) {
    std::string topic;
    if (query.substr(0, 6) == "topic=") topic = url_decode(query.substr(6));
    std::shared_ptr<ReceiveJob> job;
    {
      std::lock_guard lk(mu_);
      if (auto it = receives_.find(topic); it != receives_.end()) job = it->second;
    }
    bool armed = false;
    if (job) {
      std::lock_guard lk(job->mu);
      armed = job->subscribed && !job->finished;
    }
    reply(ex, 200, {{"ok", true}, {"topic", topic}, {"armed", armed}});
  }

  static std::string url_decode(std::string_view s) {
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
        out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
        i += 2;
      } else {
        out += s[i] == '+' ? ' ' : s[i];
      }
    }
    return out;
  }

  // On the gossip thread: count, and hand the answer to a host thread once the count is reached.
  static void on_message(void *arg, const chorus_pubsub_message *msg) noexcept {
    const uint64_t arrival_us = realtime_us();
    auto *job = static_cast<ReceiveJob *>(arg);
    if (msg->local || msg->data_len < 8) return;
    bool complete = false;
    {
      std::lock_guard lk(job->mu);
      if (job->finished) return;
      try {
        const size_t key_len = std::min(msg->data_len, kKeyBytes);
        if (!job->seen.emplace(reinterpret_cast<const char *>(msg->data), key_len).second) {
          ++job->duplicates;
          return;
        }
        const uint64_t sent_us = get_be64(msg->data);
        job->earliest_sent_us = std::min(job->earliest_sent_us, sent_us);
        job->last_arrival_us = arrival_us;
        job->last_arrival_steady = SteadyClock::now();
        job->latencies_ms.push_back((static_cast<double>(arrival_us) - static_cast<double>(sent_us)) / 1000.0);
      } catch (...) {  // out of memory: the count stops here, the deadline answers
        return;
      }
      complete = job->latencies_ms.size() >= job->count;
    }
    if (complete) job->owner->complete_from_handler(job);
  }

  void complete_from_handler(ReceiveJob *raw) {
    std::shared_ptr<ReceiveJob> job;
    {
      std::lock_guard lk(mu_);
      if (auto it = receives_.find(raw->topic); it != receives_.end() && it->second.get() == raw) job = it->second;
    }
    if (job) finish(job, true, false);
  }

  // Ends a receive once: stops counting, unsubscribes, cancels the deadline and answers (from a host
  // thread when called on the gossip thread: sorting the latencies is not the gossip thread's work).
  void finish(const std::shared_ptr<ReceiveJob> &job, bool on_gossip_thread, bool stopping) {
    {
      std::lock_guard lk(job->mu);
      if (job->finished) return;
      job->finished = true;
    }
    {
      std::lock_guard lk(mu_);
      if (auto it = receives_.find(job->topic); it != receives_.end() && it->second == job) receives_.erase(it);
    }
    unsubscribe(job);
    if (job->timer != 0) host_.cancel_timer(job->timer);
    if (job->idle_timer != 0) host_.cancel_timer(job->idle_timer);
    if (stopping) return reply(job->ex, 503, failure(CHORUS_E_UNAVAILABLE, "stopping"));
    auto answer = [job] {
      json a;
      {
        std::lock_guard lk(job->mu);
        a = job->answer_locked();
      }
      reply(job->ex, 200, a);
    };
    if (!on_gossip_thread) return answer();
    try {
      host_.post(answer);
    } catch (const chorus::Error &) {  // the host is stopping: answer here
      answer();
    }
  }

  void unsubscribe(const std::shared_ptr<ReceiveJob> &job) {
    uint64_t sub = 0;
    {
      std::lock_guard lk(job->mu);
      if (!job->subscribed || job->unsubscribed) return;
      job->unsubscribed = true;
      sub = job->sub;
    }
    if (t_ != nullptr) t_->unsubscribe(s_, sub);
  }

  chorus::Host &host_;
  chorus::ServiceRef<chorus_pubsub_v1> ref_;
  const chorus_pubsub_v1 *t_ = nullptr;
  void *s_ = nullptr;
  std::atomic<bool> stopping_{false};
  uint64_t nonce_ = 0;
  std::atomic<uint64_t> index_{0};

  std::mutex mu_;
  std::map<std::string, std::shared_ptr<ReceiveJob>> receives_;  // by topic
  std::list<Publisher> publishers_;
};

constexpr chorus_require kRequires[] = {chorus::require(CHORUS_PUBSUB_SERVICE, "^1")};

}  // namespace

CHORUS_PLUGIN(GossipLoad, .id = "bench.gossip-load", .version = "1.0.0",
              .description = "benchmark-only: publishes and receives load through chorus.pubsub over HTTP",
              .requirements = kRequires);
