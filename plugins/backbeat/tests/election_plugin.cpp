// test.backbeat-election: a test-only provider of chorus.election v1 (chorus/services/election_v1.h)
// whose outcome the integration tests set over HTTP, so backbeat's "only the admin pulses" rule can
// be exercised in a real agent before the real election plugin exists:
//   GET /bbelection/set?admin=1|0[&admin_id=<id>]  -> the new state (JSON); a change bumps the term
//   GET /bbelection/state                            -> {"admin_id","is_self","term","since",...,"watches"}
// It implements every v1 slot, watches included, as the header describes them.
#include <chorus/time_text.hpp>
#include <chorus/plugin.hpp>
#include <chorus/services/election_v1.h>

#include <ctime>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

namespace {

using json = nlohmann::json;

std::string query_value(std::string_view q, std::string_view key) {
  while (!q.empty()) {
    const size_t amp = q.find('&');
    const std::string_view kv = q.substr(0, amp);
    const size_t eq = kv.find('=');
    if (kv.substr(0, eq) == key) return eq == std::string_view::npos ? std::string() : std::string(kv.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    q = q.substr(amp + 1);
  }
  return {};
}

uint64_t unix_ms() { return static_cast<uint64_t>(chorus::unix_ms(std::chrono::system_clock::now())); }

std::string rfc3339(uint64_t ms) { return ms == 0 ? std::string() : chorus::rfc3339_utc_ms(static_cast<int64_t>(ms)); }

class Election final : public chorus::Plugin {
 public:
  Election(chorus::Host &host, std::string_view config_json) : host_(host) {
    json cfg = json::parse(config_json.begin(), config_json.end(), nullptr, false);
    if (cfg.is_object()) admin_ = cfg.value("admin", false);
    json info = json::parse(host_.host_info(), nullptr, false);
    self_id_ = info.is_object() ? info.value("agent_id", std::string("self")) : std::string("self");
    if (admin_) {
      admin_id_ = self_id_;
      term_ = 1;
      since_ = unix_ms();
    }
    table_.struct_size = sizeof table_;
    table_.is_admin = &Election::c_is_admin;
    table_.get_admin_json = &Election::c_get_admin_json;
    table_.watch_admin = &Election::c_watch;
    table_.unwatch_admin = &Election::c_unwatch;
    host_.route("GET", "/bbelection/", CHORUS_ROUTE_PREFIX, [this](const chorus::HttpRequest &req, chorus::HttpExchange ex) {
      const std::string_view call = req.path().substr(12);
      const std::string a = query_value(req.query(), "admin");
      if (call == "set" && a != "0" && a != "1") {
        ex.respond(400, "text/plain", "admin must be 0 or 1\n");
      } else if (call != "set" && call != "state") {
        ex.respond(404, "text/plain", "unknown call\n");
      } else {
        if (call == "set") set(a == "1", query_value(req.query(), "admin_id"));
        ex.respond(200, "application/json", state_json().dump());
      }
    });
  }

  void stop(std::chrono::milliseconds) override {
    std::map<uint64_t, Watch> gone;
    {
      std::lock_guard lk(mu_);
      gone.swap(watches_);
    }
    for (auto &[id, w] : gone)
      if (w.dtor != nullptr) w.dtor(w.arg);
  }

  chorus::ServiceTable service(std::string_view name, uint16_t major) override {
    if (name == CHORUS_ELECTION_SERVICE && major == 1) return {&table_, this};
    return Plugin::service(name, major);
  }

 private:
  struct Watch {
    chorus_election_watch_fn fn;
    void *arg;
    void (*dtor)(void *);
  };

  // Changes and watch callbacks are serialised by notify_mu_, so watchers see them in order.
  void set(bool admin, std::string other) {
    std::lock_guard nlk(notify_mu_);
    chorus_election_change c{};
    std::vector<Watch> targets;
    std::string admin_id, previous;
    {
      std::lock_guard lk(mu_);
      const std::string next_id = admin ? self_id_ : other;
      if (admin == admin_ && next_id == admin_id_) return;
      previous = admin_id_;
      admin_ = admin;
      admin_id_ = next_id;
      ++term_;
      since_ = admin_id_.empty() ? 0 : unix_ms();
      admin_id = admin_id_;
      c.struct_size = sizeof c;
      c.is_admin = admin_ ? 1 : 0;
      c.term = term_;
      c.since_unix_ms = since_;
      for (auto &[id, w] : watches_) targets.push_back(w);
    }
    c.admin_id = admin_id.c_str();
    c.previous_admin_id = previous.c_str();
    host_.info(std::string("test election: this agent is ") + (admin ? "now the admin" : "not the admin") +
               " (term " + std::to_string(c.term) + ")");
    t_in_callback = true;
    for (const Watch &w : targets) w.fn(w.arg, &c);
    t_in_callback = false;
  }

  json state_json() {
    std::lock_guard lk(mu_);
    return {{"admin_id", admin_id_},    {"is_self", admin_},        {"term", term_},
            {"since", rfc3339(since_)}, {"since_unix_ms", since_}, {"watches", watches_.size()}};
  }

  static Election *me(void *p) { return static_cast<Election *>(p); }

  static chorus_status c_is_admin(void *p, int32_t *out, chorus_error *err) noexcept {
    return chorus::guard(err, [&] {
      if (out == nullptr) throw chorus::Error(CHORUS_E_INVALID_ARG, "out_is_admin is NULL");
      std::lock_guard lk(me(p)->mu_);
      *out = me(p)->admin_ ? 1 : 0;
    });
  }

  static chorus_status c_get_admin_json(void *p, chorus_buf *out, chorus_error *err) noexcept {
    return chorus::guard(err, [&] {
      if (out == nullptr) throw chorus::Error(CHORUS_E_INVALID_ARG, "out is NULL");
      json j = me(p)->state_json();
      j.erase("watches");
      auto *text = new std::string(j.dump());
      *out = chorus_buf{text->data(), text->size(), text, [](chorus_buf *b) { delete static_cast<std::string *>(b->owner); }};
    });
  }

  static chorus_status c_watch(void *p, chorus_election_watch_fn fn, void *arg, void (*dtor)(void *), uint64_t *out,
                               chorus_error *err) noexcept {
    return chorus::guard(err, [&] {
      if (fn == nullptr || out == nullptr) throw chorus::Error(CHORUS_E_INVALID_ARG, "fn and out_watch are required");
      std::lock_guard lk(me(p)->mu_);
      *out = ++me(p)->next_watch_;
      me(p)->watches_[*out] = Watch{fn, arg, dtor};
    });
  }

  static chorus_status c_unwatch(void *p, uint64_t id, chorus_error *err) noexcept {
    return chorus::guard(err, [&] {
      // Outside a callback, wait for a running notification to finish (the header's promise that
      // fn is not running once unwatch returns); inside one, that lock is already ours.
      std::unique_lock<std::mutex> nlk;
      if (!t_in_callback) nlk = std::unique_lock(me(p)->notify_mu_);
      Watch w{};
      {
        std::lock_guard lk(me(p)->mu_);
        auto it = me(p)->watches_.find(id);
        if (it == me(p)->watches_.end()) throw chorus::Error(CHORUS_E_NOT_FOUND, "no such watch");
        w = it->second;
        me(p)->watches_.erase(it);
      }
      if (w.dtor != nullptr) w.dtor(w.arg);
    });
  }

  static thread_local bool t_in_callback;

  chorus::Host &host_;
  chorus_election_v1 table_{};
  std::mutex notify_mu_;
  std::mutex mu_;
  std::string self_id_;
  bool admin_ = false;
  std::string admin_id_;
  uint64_t term_ = 0;
  uint64_t since_ = 0;
  uint64_t next_watch_ = 0;
  std::map<uint64_t, Watch> watches_;
};

thread_local bool Election::t_in_callback = false;

constexpr chorus_provide kProvides[] = {chorus::provide(CHORUS_ELECTION_SERVICE, 1, 0)};

}  // namespace

CHORUS_PLUGIN(Election, .id = "test.backbeat-election", .version = "1.0.0",
              .description = "chorus.election v1 with an HTTP-switchable admin flag (tests only)",
              .provides = kProvides);
