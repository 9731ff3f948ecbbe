#include "settings.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "wire/multiaddr.hpp"

namespace chorus::p2p {

using json = nlohmann::json;

// Four limits have no "default": theirs follows the limits given (read_limits() below).
const char kConfigSchema[] = R"schema({
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "listen": {"type": "array", "items": {"type": "string", "maxLength": 1024,
               "pattern": "^/(ip4|ip6|dns|dns4|dns6)/[^/]+/tcp/[0-9]{1,5}(/(p2p|ipfs)/[1-9A-HJ-NP-Za-km-z]+|/(p2p|ipfs)/b[a-z2-7]+)?$"},
               "description": "default: /ip4/0.0.0.0 and /ip6/:: on CHORUS_P2P_PORT (9000)"},
    "bootstrap_peers": {"type": "array", "default": [], "items": {"type": "string", "maxLength": 1024,
                        "pattern": "^/(ip4|ip6|dns|dns4|dns6)/[^/]+/tcp/[0-9]{1,5}/(p2p|ipfs)/([1-9A-HJ-NP-Za-km-z]+|b[a-z2-7]+)$"}},
    "assignment_file": {"type": "string", "default": ""},
    "key_file": {"type": "string", "default": "", "description": "default: <state_dir>/p2p/identity.key"},
    "agent_version": {"type": "string", "minLength": 1, "maxLength": 256, "default": "chorus-agent/0.1.0"},
    "status_interval_ms": {"type": "integer", "minimum": 0, "maximum": 86400000, "default": 60000,
                           "description": "how often the connected-peer count is logged (the runtime's status line); 0 = never"},
    "announce_loopback": {"type": "boolean", "default": true},
    "limits": {
      "type": "object",
      "additionalProperties": false,
      "default": {},
      "properties": {
        "max_connections": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 50},
        "max_connections_per_ip": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 3},
        "low_watermark": {"type": "integer", "minimum": 0, "maximum": 100000,
                          "description": "default: 40, or 4/5 of high_watermark when that is lower"},
        "high_watermark": {"type": "integer", "minimum": 1, "maximum": 100000,
                           "description": "default: 48, or max_connections when that is lower"},
        "grace_period_ms": {"type": "integer", "minimum": 0, "maximum": 3600000, "default": 20000},
        "max_streams_per_connection": {"type": "integer", "minimum": 1, "maximum": 65536, "default": 1000,
                                       "description": "inbound and outbound each (js-libp2p's default)"},
        "dial_timeout_ms": {"type": "integer", "minimum": 100, "maximum": 600000, "default": 30000},
        "handshake_timeout_ms": {"type": "integer", "minimum": 100, "maximum": 600000, "default": 10000},
        "negotiation_timeout_ms": {"type": "integer", "minimum": 100, "maximum": 600000, "default": 10000},
        "dial_backoff_base_ms": {"type": "integer", "minimum": 0, "maximum": 3600000,
                                 "description": "default: 5000, or dial_backoff_max_ms when that is lower"},
        "dial_backoff_max_ms": {"type": "integer", "minimum": 0, "maximum": 86400000,
                                "description": "default: 300000, or dial_backoff_base_ms when that is higher"},
        "inbound_per_second": {"type": "number", "minimum": 0.001, "maximum": 1000000, "default": 50},
        "inbound_burst": {"type": "integer", "minimum": 1, "maximum": 1000000, "default": 100},
        "stream_send_buffer": {"type": "integer", "minimum": 4096, "maximum": 1073741824, "default": 262144,
                               "description": "one yamux window queued behind the one in flight keeps a stream busy; more only spreads queued bytes over more memory than the caches hold when many streams send at once"}
      }
    }
  }
})schema";

namespace {

[[noreturn]] void fail(const std::string &key, const std::string &what) {
  throw std::invalid_argument("p2p.config." + key + ": " + what);
}

std::vector<std::string> read_addrs(const json &v, const std::string &key, bool need_peer_id) {
  if (!v.is_array()) fail(key, "must be a list of multiaddrs");
  if (v.size() > 64) fail(key, "at most 64 entries");
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string k = key + "[" + std::to_string(i) + "]";
    if (!v[i].is_string()) fail(k, "must be a multiaddr string");
    std::string why;
    auto ma = Multiaddr::parse(v[i].get<std::string>(), &why);
    if (!ma) fail(k, "not a multiaddr: " + why);
    if (!ma->tcp_target()) fail(k, "'" + v[i].get<std::string>() + "' is not a TCP address (/ip4|ip6|dns*/…/tcp/PORT)");
    if (need_peer_id && !ma->peer_id()) fail(k, "'" + v[i].get<std::string>() + "' has no /p2p/<peer id>");
    out.push_back(ma->to_string());
  }
  return out;
}

// CHORUS_BOOTSTRAP_PEERS: comma-separated multiaddrs (docs/contract.md, Environment names).
std::vector<std::string> split_env_peers(const std::string &text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto b = item.find_first_not_of(" \t");
    const auto e = item.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
  }
  return out;
}

// The four limits whose default follows the limits given, so that max_connections: 10 alone is valid.
constexpr uint32_t kHighWatermark = 48, kLowWatermark = 40, kDialBackoffBaseMs = 5000, kDialBackoffMaxMs = 300000;

Limits read_limits(const json &v) {
  Limits l;
  l.max_connections = v.at("max_connections").get<uint32_t>();
  l.max_connections_per_ip = v.at("max_connections_per_ip").get<uint32_t>();
  l.grace_period_ms = v.at("grace_period_ms").get<uint32_t>();
  l.max_streams_per_connection = v.at("max_streams_per_connection").get<uint32_t>();
  l.dial_timeout_ms = v.at("dial_timeout_ms").get<uint32_t>();
  l.handshake_timeout_ms = v.at("handshake_timeout_ms").get<uint32_t>();
  l.negotiation_timeout_ms = v.at("negotiation_timeout_ms").get<uint32_t>();
  l.inbound_per_second = v.at("inbound_per_second").get<double>();
  l.inbound_burst = v.at("inbound_burst").get<uint32_t>();
  l.stream_send_buffer = v.at("stream_send_buffer").get<uint32_t>();

  const auto given = [&](const char *k) { return v.contains(k); };
  l.high_watermark = given("high_watermark") ? v["high_watermark"].get<uint32_t>() : std::min(kHighWatermark, l.max_connections);
  l.low_watermark = given("low_watermark") ? v["low_watermark"].get<uint32_t>()
                    : kLowWatermark > l.high_watermark ? l.high_watermark * 4 / 5 : kLowWatermark;
  l.dial_backoff_base_ms = given("dial_backoff_base_ms") ? v["dial_backoff_base_ms"].get<uint32_t>() : kDialBackoffBaseMs;
  l.dial_backoff_max_ms = given("dial_backoff_max_ms") ? v["dial_backoff_max_ms"].get<uint32_t>()
                                                       : std::max(kDialBackoffMaxMs, l.dial_backoff_base_ms);
  if (!given("dial_backoff_base_ms")) l.dial_backoff_base_ms = std::min(l.dial_backoff_base_ms, l.dial_backoff_max_ms);

  if (l.low_watermark > l.high_watermark) fail("limits.low_watermark", "must not exceed limits.high_watermark");
  if (l.high_watermark > l.max_connections) fail("limits.high_watermark", "must not exceed limits.max_connections");
  if (l.dial_backoff_base_ms > l.dial_backoff_max_ms)
    fail("limits.dial_backoff_base_ms", "must not exceed limits.dial_backoff_max_ms");
  return l;
}

// CHORUS_P2P_PORT replaces the TCP port of every listen address (CHORUS's single P2P port knob;
// docs/contract.md, Environment names).
std::string with_port(const std::string &addr, uint16_t port) {
  auto ma = Multiaddr::parse(addr, nullptr);
  auto t = ma ? ma->tcp_target() : std::nullopt;
  if (!t) return addr;
  const std::string ip = t->kind == Multiaddr::TcpTarget::ip6 ? "/ip6/" : "/ip4/";
  return ip + t->host + "/tcp/" + std::to_string(port);
}

}  // namespace

std::vector<std::string> read_assignment_peers(const std::string &path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument("p2p.config.assignment_file: cannot read '" + path + "'");
  json doc = json::parse(in, nullptr, false);
  if (doc.is_discarded() || !doc.is_object())
    throw std::invalid_argument("p2p.config.assignment_file: '" + path + "' is not a JSON object");
  if (!doc.contains("bootstrap_peers")) return {};
  return read_addrs(doc["bootstrap_peers"], "assignment_file(" + path + ").bootstrap_peers", true);
}

Settings parse_settings(std::string_view config_json, const std::string &state_dir, const EnvLookup &env,
                        const std::vector<std::string> &agent_assignment_peers) {
  json cfg = json::parse(config_json, nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object()) throw std::invalid_argument("p2p.config: must be an object");
  Settings s;
  std::vector<std::string> config_peers;
  const bool listen_given = cfg.contains("listen");
  try {
    if (listen_given) s.listen = read_addrs(cfg["listen"], "listen", false);
    config_peers = read_addrs(cfg.at("bootstrap_peers"), "bootstrap_peers", true);
    s.assignment_file = cfg.at("assignment_file").get<std::string>();
    s.key_file = cfg.at("key_file").get<std::string>();
    s.agent_version = cfg.at("agent_version").get<std::string>();
    s.status_interval_ms = cfg.at("status_interval_ms").get<uint64_t>();
    s.announce_loopback = cfg.at("announce_loopback").get<bool>();
    s.limits = read_limits(cfg.at("limits"));
  } catch (const json::exception &e) {  // the host did not apply kConfigSchema
    throw std::invalid_argument(std::string("p2p.config: does not match the plugin's schema: ") + e.what());
  }

  uint16_t port = 9000;
  bool port_from_env = false;
  if (auto p = env("CHORUS_P2P_PORT"); p && !p->empty()) {
    char *end = nullptr;
    const long n = std::strtol(p->c_str(), &end, 10);
    if (*end != '\0' || n < 0 || n > 65535)
      throw std::invalid_argument("CHORUS_P2P_PORT: '" + *p + "' is not a port number (0-65535)");
    port = static_cast<uint16_t>(n);
    port_from_env = true;
  }
  if (!listen_given) {
    s.listen = {"/ip4/0.0.0.0/tcp/" + std::to_string(port), "/ip6/::/tcp/" + std::to_string(port)};
  } else if (port_from_env) {
    for (auto &a : s.listen) a = with_port(a, port);
  }

  // Bootstrap peers: assignment > config > env (CHORUS's precedence; docs/contract.md, Environment names).
  // A missing, unreadable or invalid assignment is a warning, as in the CHORUS runtime: the agent carries
  // on with the static configuration (the plugin logs assignment_problem).
  std::vector<std::string> assignment_peers;
  if (!agent_assignment_peers.empty()) {
    try {
      assignment_peers = read_addrs(json(agent_assignment_peers), "the agent's assignment: bootstrap_peers", true);
    } catch (const std::invalid_argument &e) {
      s.assignment_problem = e.what();
    }
  }
  if (assignment_peers.empty() && !s.assignment_file.empty()) {
    try {
      assignment_peers = read_assignment_peers(s.assignment_file);
    } catch (const std::invalid_argument &e) {
      s.assignment_problem = e.what();
    }
  }
  if (!assignment_peers.empty()) {
    s.bootstrap_peers = assignment_peers;
    s.bootstrap_source = "assignment";
  } else if (!config_peers.empty()) {
    s.bootstrap_peers = config_peers;
    s.bootstrap_source = "config";
  } else if (auto e = env("CHORUS_BOOTSTRAP_PEERS"); e && !e->empty()) {
    s.bootstrap_peers = read_addrs(json(split_env_peers(*e)), "CHORUS_BOOTSTRAP_PEERS", true);
    s.bootstrap_source = "env";
  } else {
    s.bootstrap_source = "none";
  }

  if (s.key_file.empty()) {
    if (state_dir.empty()) fail("key_file", "not set and the host has no state directory");
    s.key_file = state_dir + "/p2p/identity.key";
  }
  return s;
}

}  // namespace chorus::p2p
