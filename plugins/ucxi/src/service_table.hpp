// The running ucxi plugin (Runtime: the content store with the metrics, the announcements on pubsub
// and the decision publisher around it) and the chorus.ucxi v1 C table over it (ucxi_v1.h). The HTTP
// routes (http_routes.hpp) use the same Runtime, so both interfaces behave alike.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <chorus/plugin.hpp>
#include <chorus/services/ucxi_v1.h>
#include <nlohmann/json.hpp>

#include "content.hpp"
#include "decision.hpp"
#include "settings.hpp"
#include "ucxl/address.hpp"

namespace chorus::ucxi {

// chorus_ucxi_* (README.md, "Metrics").
struct Metrics {
  chorus::Counter requests;          // requests_total{op,code}
  chorus::Histogram request_seconds; // request_seconds{op}
  chorus::Counter versions_stored;
  chorus::Counter versions_local_only;  // stored while no peer took a copy of the version list
  chorus::Counter decisions_published;
  chorus::Counter cache_hits;
  chorus::Counter cache_misses;
  chorus::Counter announcements_heard;
};
Metrics define_metrics(chorus::Host &host);

// The plugin's version (the descriptor's, and status's server.version).
inline constexpr const char kPluginVersion[] = "0.1.0";
// Where the HTTP operations live.
inline constexpr const char kBasePath[] = "/ucxi/v1";

// The type of the announcement of a plain put on the announce topic; decisions are announced as
// kDecisionPublishedType (decision.hpp). Both are recorded when heard from other agents.
inline constexpr std::string_view kTypePut = "ucxl_put";

// Owned by the plugin (and, for the length of a call, by the HTTP handler or service function using
// it), never by a completion: the store must not be destroyed from inside one of its own completions.
class Runtime {
 public:
  // Publishes a CHORUS envelope of `type` with `data` on the announce topic; empty when pubsub does
  // not run. Returns false when the message could not be sent (logged, never an operation's error).
  using Publish = std::function<bool(const std::string &type, const nlohmann::json &data)>;
  // The p2p part of status: {"peer_id","connected_peers"}.
  using P2pStatus = std::function<nlohmann::json()>;

  Runtime(chorus::Host &host, Settings settings, Metrics metrics, std::shared_ptr<ContentStore> store, Identity self,
          Publish publish, P2pStatus p2p_status);
  ~Runtime();
  Runtime(const Runtime &) = delete;
  Runtime &operator=(const Runtime &) = delete;
  // Cancels what still runs (the store completes it with CHORUS_E_CANCELLED).
  void stop();

  const Settings &settings() const { return settings_; }
  const Identity &identity() const { return self_; }
  ContentStore &store() { return *store_; }
  const Metrics &metrics() const { return metrics_; }
  uint32_t timeout(uint32_t requested) const { return requested != 0 ? requested : settings_.timeout_ms; }

  // A new version of addr; on success counted and, with announce_puts, announced (ucxl_put).
  void put(const ucxl::Address &addr, std::string content_type, std::vector<uint8_t> content, uint32_t timeout_ms,
           Done done);
  // get (counting cache use in the metrics) and resolve through the store.
  void get(const ucxl::Address &addr, uint64_t from, uint32_t timeout_ms, Done done);
  void resolve(const ucxl::Address &addr, uint64_t from, uint32_t timeout_ms, Done done);
  // Validates a decision record (decision.hpp), stores it at its address and announces it
  // (decision_published). When `expected` is set it must be the decision's address (field "address").
  // meta: put's plus "id".
  void publish_decision(const nlohmann::json &record, const ucxl::Address *expected, uint32_t timeout_ms, Done done);

  // A message heard on the announce topic: ucxl_put and decision_published are recorded in the index
  // (as provided by `from_peer`); anything else is ignored. Returns whether it was recorded.
  bool heard(const std::string &type, const nlohmann::json &data, const std::string &from_peer);

  // GET /ucxi/v1/status's data.
  nlohmann::json status_json();
  // Health from the index: ok with "<n> series indexed", degraded while writes to it fail.
  void report_health();
  // report_health when the index's state changed since the last report (after each write).
  void follow_index_health();

 private:
  void count_cache();

  chorus::Host &host_;
  const Settings settings_;
  const Metrics metrics_;
  std::shared_ptr<ContentStore> store_;
  const Identity self_;
  const Publish publish_;
  const P2pStatus p2p_status_;
  const uint64_t started_ms_;
  std::mutex cache_mu_;
  uint64_t cache_hits_seen_ = 0, cache_misses_seen_ = 0;  // what the counters already hold
  std::atomic<bool> index_ok_reported_{true};
};

// Where the table and the HTTP routes find the runtime: null while the plugin is not running.
class RuntimeSource {
 public:
  virtual ~RuntimeSource() = default;
  virtual std::shared_ptr<Runtime> runtime() = 0;
};

// The table; its `self` must be a RuntimeSource *.
chorus_ucxi_v1 make_ucxi_table();

// Parses text as one concrete address for `op` (no wildcards; put and delete: temporal *^ only).
// On failure fills *field and *why (the parse error's field and CHORUS-format message).
std::optional<ucxl::Address> parse_concrete(std::string_view text, const char *op, bool latest_only, std::string *field,
                                            std::string *why);

}  // namespace chorus::ucxi
