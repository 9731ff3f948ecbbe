// test.backbeat-driver: a test-only plugin that requires chorus.backbeat and exposes its calls over
// HTTP, so the integration tests can drive operations in a real agent:
//   GET /bbdriver/<call>?k=v&...  ->  {"status": <chorus_status>, "message": "..."}
// calls: start (id, type, beats, data), update (id, phase, peers), complete (id, peers), fail (id, reason),
// bulk_start (prefix, n, beats, type), bulk_complete (prefix, n, peers), budget (beats, work_ms), health.
#include <chorus/plugin.hpp>
#include <chorus/services/backbeat_v1.h>

#include <map>
#include <nlohmann/json.hpp>
#include <thread>

namespace {

std::map<std::string, std::string> parse_query(std::string_view q) {
  std::map<std::string, std::string> out;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view kv = q.substr(0, amp);
    size_t eq = kv.find('=');
    std::string k(kv.substr(0, eq)), v(eq == std::string_view::npos ? "" : kv.substr(eq + 1));
    std::string dec;
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] == '%' && i + 2 < v.size()) {
        dec += static_cast<char>(std::stoi(v.substr(i + 1, 2), nullptr, 16));
        i += 2;
      } else {
        dec += v[i] == '+' ? ' ' : v[i];
      }
    }
    out[k] = dec;
    if (amp == std::string_view::npos) break;
    q = q.substr(amp + 1);
  }
  return out;
}

class Driver final : public chorus::Plugin {
 public:
  Driver(chorus::Host &host, std::string_view) : host_(host) {
    host_.route("GET", "/bbdriver/", CHORUS_ROUTE_PREFIX, [this](const chorus::HttpRequest &req, chorus::HttpExchange ex) {
      ex.respond(200, "application/json", handle(req.path().substr(10), parse_query(req.query())));
    });
  }

 private:
  std::string handle(std::string_view call, std::map<std::string, std::string> q) {
    auto ref = host_.try_acquire<chorus_backbeat_v1>(CHORUS_BACKBEAT_SERVICE, "^1");
    if (!ref) return R"({"status":-6,"message":"chorus.backbeat not available"})";
    const chorus_backbeat_v1 *t = ref.table();
    void *self = ref.self();
    chorus::ErrorBuffer err;
    chorus_status s = CHORUS_OK;
    nlohmann::json extra;
    auto num = [&](const char *k, long d) { return q.count(k) ? std::stol(q[k]) : d; };
    if (call == "start") {
      const std::string &id = q["id"], type = q.count("type") ? q["type"] : "dht_store", data = q["data"];
      s = t->start_operation(self, id.data(), id.size(), type.data(), type.size(), static_cast<uint32_t>(num("beats", 3)),
                             data.data(), data.size(), err.get());
    } else if (call == "update") {
      s = t->update_phase(self, q["id"].data(), q["id"].size(), static_cast<int32_t>(num("phase", 1)),
                          static_cast<uint32_t>(num("peers", 0)), err.get());
    } else if (call == "complete") {
      s = t->complete_operation(self, q["id"].data(), q["id"].size(), static_cast<uint32_t>(num("peers", 0)), err.get());
    } else if (call == "fail") {
      s = t->fail_operation(self, q["id"].data(), q["id"].size(), q["reason"].data(), q["reason"].size(), err.get());
    } else if (call == "bulk_start" || call == "bulk_complete") {
      const long n = num("n", 0);
      long ok = 0;
      for (long i = 0; i < n; ++i) {
        const std::string id = q["prefix"] + std::to_string(i);
        chorus_status r;
        if (call == "bulk_start") {
          const std::string type = q.count("type") ? q["type"] : "dht_store";
          r = t->start_operation(self, id.data(), id.size(), type.data(), type.size(),
                                 static_cast<uint32_t>(num("beats", 5)), nullptr, 0, err.get());
        } else {
          r = t->complete_operation(self, id.data(), id.size(), static_cast<uint32_t>(num("peers", 5)), err.get());
        }
        if (r == CHORUS_OK) ++ok;
        else s = r;
      }
      extra["ok"] = ok;
    } else if (call == "budget") {
      struct Work {
        long ms;
      } w{num("work_ms", 0)};
      s = t->execute_with_beat_budget(
          self, static_cast<uint32_t>(num("beats", 1)),
          [](void *arg, chorus_error *) -> chorus_status {
            std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<Work *>(arg)->ms));
            return CHORUS_OK;
          },
          &w, err.get());
    } else if (call == "health") {
      chorus_buf b{};
      s = t->get_health(self, &b, err.get());
      if (s == CHORUS_OK) {
        extra["health"] = nlohmann::json::parse(std::string(b.data, b.len));
        b.release(&b);
      }
    } else {
      s = CHORUS_E_NOT_FOUND;
    }
    nlohmann::json out = {{"status", s}, {"message", s == CHORUS_OK ? "" : std::string(err.text())}};
    for (auto &[k, v] : extra.items()) out[k] = v;
    return out.dump();
  }
  chorus::Host &host_;
};

constexpr chorus_require kRequires[] = {chorus::require(CHORUS_BACKBEAT_SERVICE, "^1")};

}  // namespace

CHORUS_PLUGIN(Driver, .id = "test.backbeat-driver", .version = "1.0.0", .description = "drives chorus.backbeat in tests",
              .requirements = kRequires);
