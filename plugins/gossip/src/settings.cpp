#include "settings.hpp"

#include <stdexcept>

#include <nlohmann/json.hpp>

namespace chorus::gossip {

// Defaults: the GossipSub v1.1 defaults the seed runtime uses (docs/protocols.md, PubSub) and, for
// scoring, score.hpp's. Topics beyond max_topics are refused; a peer's subscriptions beyond it are
// not tracked.
const char kConfigSchema[] = R"({
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "signature_policy": {"type": "string", "enum": ["strict_sign", "strict_no_sign"], "default": "strict_sign"},
    "message_id": {"type": "string", "enum": ["from_seqno", "key_seqno"], "default": "from_seqno"},
    "max_message_bytes": {"type": "integer", "minimum": 256, "maximum": 16777216, "default": 1048576},
    "peer_queue_bytes": {"type": "integer", "minimum": 65536, "maximum": 1073741824, "default": 4194304},
    "publish_wait_ms": {"type": "integer", "minimum": 0, "maximum": 60000, "default": 1000},
    "verify_threads": {"type": "integer", "minimum": -1, "maximum": 16, "default": -1},
    "topics": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 1024},
               "default": ["CHORUS/coordination/v1", "hmmm/meta-discussion/v1", "CHORUS/context-feedback/v1"]},
    "max_topics": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 1000},
    "hop_limit": {"type": "integer", "minimum": 0, "maximum": 1000, "default": 5},
    "router": {
      "type": "object", "additionalProperties": false, "default": {},
      "properties": {
        "d": {"type": "integer", "minimum": 1, "maximum": 100, "default": 6},
        "d_lo": {"type": "integer", "minimum": 0, "maximum": 100, "default": 4},
        "d_hi": {"type": "integer", "minimum": 1, "maximum": 200, "default": 12},
        "d_lazy": {"type": "integer", "minimum": 0, "maximum": 100, "default": 6},
        "d_score": {"type": "integer", "minimum": 0, "maximum": 100, "default": 4},
        "d_out": {"type": "integer", "minimum": 0, "maximum": 100, "default": 2},
        "heartbeat_ms": {"type": "integer", "minimum": 10, "maximum": 600000, "default": 1000},
        "fanout_ttl_ms": {"type": "integer", "minimum": 100, "maximum": 86400000, "default": 60000},
        "mcache_len": {"type": "integer", "minimum": 1, "maximum": 100, "default": 5},
        "mcache_gossip": {"type": "integer", "minimum": 0, "maximum": 100, "default": 3},
        "seen_ttl_ms": {"type": "integer", "minimum": 1000, "maximum": 86400000, "default": 120000},
        "gossip_factor": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.25},
        "prune_backoff_ms": {"type": "integer", "minimum": 0, "maximum": 86400000, "default": 60000},
        "unsubscribe_backoff_ms": {"type": "integer", "minimum": 0, "maximum": 86400000, "default": 10000},
        "flood_publish": {"type": "boolean", "default": true},
        "do_px": {"type": "boolean", "default": true},
        "prune_peers": {"type": "integer", "minimum": 0, "maximum": 64, "default": 16},
        "max_ihave_length": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 5000},
        "max_ihave_messages": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 10},
        "iwant_followup_ms": {"type": "integer", "minimum": 100, "maximum": 600000, "default": 3000},
        "validate_queue": {"type": "integer", "minimum": 1, "maximum": 1000000, "default": 256},
        "validate_throttle": {"type": "integer", "minimum": 1, "maximum": 1000000, "default": 1024}
      }
    },
    "scoring": {
      "type": "object", "additionalProperties": false, "default": {},
      "properties": {
        "enabled": {"type": "boolean", "default": true},
        "thresholds": {
          "type": "object", "additionalProperties": false, "default": {},
          "properties": {
            "gossip": {"type": "number", "maximum": 0, "default": -10},
            "publish": {"type": "number", "maximum": 0, "default": -50},
            "graylist": {"type": "number", "maximum": 0, "default": -80},
            "accept_px": {"type": "number", "minimum": 0, "default": 10},
            "opportunistic_graft": {"type": "number", "minimum": 0, "default": 1}
          }
        },
        "topic": {
          "type": "object", "additionalProperties": false, "default": {},
          "properties": {
            "topic_weight": {"type": "number", "minimum": 0, "default": 1},
            "time_in_mesh_weight": {"type": "number", "minimum": 0, "default": 0.01},
            "time_in_mesh_quantum_ms": {"type": "integer", "minimum": 1, "maximum": 86400000, "default": 1000},
            "time_in_mesh_cap": {"type": "number", "minimum": 0, "default": 3600},
            "first_message_deliveries_weight": {"type": "number", "minimum": 0, "default": 1},
            "first_message_deliveries_decay": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5},
            "first_message_deliveries_cap": {"type": "number", "minimum": 0, "default": 2000},
            "mesh_message_deliveries_weight": {"type": "number", "maximum": 0, "default": 0},
            "mesh_message_deliveries_decay": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5},
            "mesh_message_deliveries_cap": {"type": "number", "minimum": 0, "default": 100},
            "mesh_message_deliveries_threshold": {"type": "number", "minimum": 0, "default": 1},
            "mesh_message_deliveries_window_ms": {"type": "integer", "minimum": 0, "maximum": 600000, "default": 10},
            "mesh_message_deliveries_activation_ms": {"type": "integer", "minimum": 0, "maximum": 86400000, "default": 5000},
            "mesh_failure_penalty_weight": {"type": "number", "maximum": 0, "default": 0},
            "mesh_failure_penalty_decay": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5},
            "invalid_message_deliveries_weight": {"type": "number", "maximum": 0, "default": -100},
            "invalid_message_deliveries_decay": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.3}
          }
        },
        "topic_score_cap": {"type": "number", "minimum": 0, "default": 100},
        "app_specific_weight": {"type": "number", "default": 1},
        "ip_colocation_factor_weight": {"type": "number", "maximum": 0, "default": -10},
        "ip_colocation_factor_threshold": {"type": "number", "minimum": 1, "default": 10},
        "ip_colocation_whitelist": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 64}, "default": []},
        "behaviour_penalty_weight": {"type": "number", "maximum": 0, "default": -10},
        "behaviour_penalty_threshold": {"type": "number", "minimum": 0, "default": 0},
        "behaviour_penalty_decay": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.9},
        "decay_interval_ms": {"type": "integer", "minimum": 10, "maximum": 3600000, "default": 1000},
        "decay_to_zero": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.01},
        "retain_score_ms": {"type": "integer", "minimum": 0, "maximum": 86400000, "default": 3600000}
      }
    },
    "probe": {
      "type": "object", "additionalProperties": false, "default": {},
      "properties": {
        "enabled": {"type": "boolean", "default": true},
        "interval_ms": {"type": "integer", "minimum": 100, "maximum": 3600000, "default": 10000},
        "timeout_ms": {"type": "integer", "minimum": 10, "maximum": 600000, "default": 3000}
      }
    }
  }
})";

namespace {

using json = nlohmann::json;

template <class T>
T get(const json &obj, const char *key) {
  return obj.at(key).get<T>();
}

void require(bool ok, const std::string &key, const std::string &what) {
  if (!ok) throw std::invalid_argument("gossip.config." + key + ": " + what);
}

}  // namespace

Settings parse_settings(std::string_view config_json) {
  const auto cfg = json::parse(config_json, nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object()) throw std::invalid_argument("gossip.config: must be an object");
  Settings s;
  try {
    s.signature_policy = get<std::string>(cfg, "signature_policy") == "strict_no_sign" ? SignaturePolicy::kStrictNoSign
                                                                                        : SignaturePolicy::kStrictSign;
    s.max_message_bytes = get<size_t>(cfg, "max_message_bytes");
    s.peer_queue_bytes = get<size_t>(cfg, "peer_queue_bytes");
    s.publish_wait_ms = get<uint32_t>(cfg, "publish_wait_ms");
    s.verify_threads = get<int>(cfg, "verify_threads");
    s.topics = get<std::vector<std::string>>(cfg, "topics");
    s.max_topics = get<size_t>(cfg, "max_topics");
    s.hop_limit = get<uint32_t>(cfg, "hop_limit");

    const json &r = cfg.at("router");
    RouterParams &p = s.router;
    p.d = get<int>(r, "d");
    p.d_lo = get<int>(r, "d_lo");
    p.d_hi = get<int>(r, "d_hi");
    p.d_lazy = get<int>(r, "d_lazy");
    p.d_score = get<int>(r, "d_score");
    p.d_out = get<int>(r, "d_out");
    p.heartbeat_ms = get<uint64_t>(r, "heartbeat_ms");
    p.fanout_ttl_ms = get<uint64_t>(r, "fanout_ttl_ms");
    p.mcache_len = get<int>(r, "mcache_len");
    p.mcache_gossip = get<int>(r, "mcache_gossip");
    p.seen_ttl_ms = get<uint64_t>(r, "seen_ttl_ms");
    p.gossip_factor = get<double>(r, "gossip_factor");
    p.prune_backoff_ms = get<uint64_t>(r, "prune_backoff_ms");
    p.unsubscribe_backoff_ms = get<uint64_t>(r, "unsubscribe_backoff_ms");
    p.flood_publish = get<bool>(r, "flood_publish");
    p.do_px = get<bool>(r, "do_px");
    p.prune_peers = get<int>(r, "prune_peers");
    p.max_ihave_length = get<int>(r, "max_ihave_length");
    p.max_ihave_messages = get<int>(r, "max_ihave_messages");
    p.iwant_followup_ms = get<uint64_t>(r, "iwant_followup_ms");
    p.validate_queue = get<size_t>(r, "validate_queue");
    p.validate_throttle = get<size_t>(r, "validate_throttle");
    p.message_id_fn = get<std::string>(cfg, "message_id") == "key_seqno" ? MessageIdFn::kKeySeqno : MessageIdFn::kFromSeqno;
    p.max_topics_per_peer = s.max_topics;
    p.max_message_bytes = s.max_message_bytes;

    const json &sc = cfg.at("scoring");
    s.scoring_enabled = get<bool>(sc, "enabled");
    const json &th = sc.at("thresholds");
    s.thresholds.gossip = get<double>(th, "gossip");
    s.thresholds.publish = get<double>(th, "publish");
    s.thresholds.graylist = get<double>(th, "graylist");
    s.thresholds.accept_px = get<double>(th, "accept_px");
    s.thresholds.opportunistic_graft = get<double>(th, "opportunistic_graft");

    const json &t = sc.at("topic");
    TopicScoreParams &tp = s.score.default_topic;
    tp.topic_weight = get<double>(t, "topic_weight");
    tp.time_in_mesh_weight = get<double>(t, "time_in_mesh_weight");
    tp.time_in_mesh_quantum_ms = get<uint64_t>(t, "time_in_mesh_quantum_ms");
    tp.time_in_mesh_cap = get<double>(t, "time_in_mesh_cap");
    tp.first_message_deliveries_weight = get<double>(t, "first_message_deliveries_weight");
    tp.first_message_deliveries_decay = get<double>(t, "first_message_deliveries_decay");
    tp.first_message_deliveries_cap = get<double>(t, "first_message_deliveries_cap");
    tp.mesh_message_deliveries_weight = get<double>(t, "mesh_message_deliveries_weight");
    tp.mesh_message_deliveries_decay = get<double>(t, "mesh_message_deliveries_decay");
    tp.mesh_message_deliveries_cap = get<double>(t, "mesh_message_deliveries_cap");
    tp.mesh_message_deliveries_threshold = get<double>(t, "mesh_message_deliveries_threshold");
    tp.mesh_message_deliveries_window_ms = get<uint64_t>(t, "mesh_message_deliveries_window_ms");
    tp.mesh_message_deliveries_activation_ms = get<uint64_t>(t, "mesh_message_deliveries_activation_ms");
    tp.mesh_failure_penalty_weight = get<double>(t, "mesh_failure_penalty_weight");
    tp.mesh_failure_penalty_decay = get<double>(t, "mesh_failure_penalty_decay");
    tp.invalid_message_deliveries_weight = get<double>(t, "invalid_message_deliveries_weight");
    tp.invalid_message_deliveries_decay = get<double>(t, "invalid_message_deliveries_decay");
    s.score.score_all_topics = true;
    s.score.topic_score_cap = get<double>(sc, "topic_score_cap");
    s.score.app_specific_weight = get<double>(sc, "app_specific_weight");
    s.score.ip_colocation_factor_weight = get<double>(sc, "ip_colocation_factor_weight");
    s.score.ip_colocation_factor_threshold = get<double>(sc, "ip_colocation_factor_threshold");
    for (const auto &ip : sc.at("ip_colocation_whitelist")) s.score.ip_colocation_whitelist.insert(ip.get<std::string>());
    s.score.behaviour_penalty_weight = get<double>(sc, "behaviour_penalty_weight");
    s.score.behaviour_penalty_threshold = get<double>(sc, "behaviour_penalty_threshold");
    s.score.behaviour_penalty_decay = get<double>(sc, "behaviour_penalty_decay");
    s.score.decay_interval_ms = get<uint64_t>(sc, "decay_interval_ms");
    s.score.decay_to_zero = get<double>(sc, "decay_to_zero");
    s.score.retain_score_ms = get<uint64_t>(sc, "retain_score_ms");

    const json &pr = cfg.at("probe");
    s.probe.enabled = get<bool>(pr, "enabled");
    s.probe.interval_ms = get<uint64_t>(pr, "interval_ms");
    s.probe.timeout_ms = get<uint64_t>(pr, "timeout_ms");
  } catch (const json::exception &e) {  // the host did not apply kConfigSchema
    throw std::invalid_argument(std::string("gossip.config: does not match the plugin's schema: ") + e.what());
  }

  const RouterParams &p = s.router;
  require(p.d_lo <= p.d && p.d <= p.d_hi, "router.d", "needs d_lo <= d <= d_hi");
  require(p.d_out < p.d_lo || p.d_lo == 0, "router.d_out", "must be below d_lo");
  require(p.d_score <= p.d, "router.d_score", "must not exceed d");
  require(p.mcache_gossip <= p.mcache_len, "router.mcache_gossip", "must not exceed mcache_len");
  const PeerScoreThresholds &t = s.thresholds;
  require(t.graylist <= t.publish && t.publish <= t.gossip, "scoring.thresholds",
          "needs graylist <= publish <= gossip <= 0");
  require(s.probe.timeout_ms < s.probe.interval_ms, "probe.timeout_ms", "must be below probe.interval_ms");
  require(s.topics.size() <= s.max_topics, "topics", "more topics than max_topics");

  if (!s.scoring_enabled) {
    // Neutral scoring: every weight zero, so every peer scores 0 (the thresholds still apply to 0).
    s.score.default_topic.topic_weight = 0;
    s.score.app_specific_weight = 0;
    s.score.ip_colocation_factor_weight = 0;
    s.score.behaviour_penalty_weight = 0;
  }
  return s;
}

}  // namespace chorus::gossip
