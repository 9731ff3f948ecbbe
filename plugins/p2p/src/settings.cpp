#include "settings.hpp"

#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "wire/multiaddr.hpp"

namespace chorus::p2p {

using json = nlohmann::json;



namespace {

[[noreturn]] void fail(const std::string &key, const std::string &what) {
  throw std::invalid_argument("p2p.config." + key + ": " + what);
}

uint32_t read_u32(const json &v, const std::string &key, uint32_t lo, uint32_t hi) {
  if (!v.is_number_integer() && !v.is_number_unsigned())
    fail(key, "must be an integer between " + std::to_string(lo) + " and " + std::to_string(hi));
  const auto n = v.get<int64_t>();
  if (n < lo || n > hi) fail(key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                                      " (got " + std::to_string(n) + ")");
  return static_cast<uint32_t>(n);
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

void read_limits(const json &v, Limits &l) {
  if (!v.is_object()) fail("limits", "must be an object");
  auto given = [&](const char *k) { return v.contains(k); };
  for (const auto &[k, x] : v.items()) {
    const std::string key = "limits." + k;
    if (k == "max_connections") l.max_connections = read_u32(x, key, 1, 100000);
    else if (k == "max_connections_per_ip") l.max_connections_per_ip = read_u32(x, key, 1, 100000);
    else if (k == "low_watermark") l.low_watermark = read_u32(x, key, 0, 100000);
    else if (k == "high_watermark") l.high_watermark = read_u32(x, key, 1, 100000);
    else if (k == "grace_period_ms") l.grace_period_ms = read_u32(x, key, 0, 3600000);
    else if (k == "max_streams_per_connection") l.max_streams_per_connection = read_u32(x, key, 1, 65536);
    else if (k == "dial_timeout_ms") l.dial_timeout_ms = read_u32(x, key, 100, 600000);
    else if (k == "handshake_timeout_ms") l.handshake_timeout_ms = read_u32(x, key, 100, 600000);
    else if (k == "negotiation_timeout_ms") l.negotiation_timeout_ms = read_u32(x, key, 100, 600000);
    else if (k == "dial_backoff_base_ms") l.dial_backoff_base_ms = read_u32(x, key, 0, 3600000);
    else if (k == "dial_backoff_max_ms") l.dial_backoff_max_ms = read_u32(x, key, 0, 86400000);
    else if (k == "inbound_burst") l.inbound_burst = read_u32(x, key, 1, 1000000);
    else if (k == "stream_send_buffer") l.stream_send_buffer = read_u32(x, key, 4096, 1 << 30);
    else if (k == "inbound_per_second") {
      if (!x.is_number() || !(x.get<double>() > 0) || !std::isfinite(x.get<double>()))
        fail(key, "must be a number > 0");
      l.inbound_per_second = x.get<double>();
    } else {
      fail(key, "unknown key (known: max_connections, max_connections_per_ip, low_watermark, high_watermark, "
                "grace_period_ms, max_streams_per_connection, dial_timeout_ms, handshake_timeout_ms, "
                "negotiation_timeout_ms, dial_backoff_base_ms, dial_backoff_max_ms, inbound_per_second, "
                "inbound_burst, stream_send_buffer)");
    }
  }
  // Values the user did not set follow the ones they did (max_connections: 10 alone is valid).
  if (!given("high_watermark") && l.high_watermark > l.max_connections) l.high_watermark = l.max_connections;
  if (!given("low_watermark") && l.low_watermark > l.high_watermark) l.low_watermark = l.high_watermark * 4 / 5;
  if (!given("dial_backoff_max_ms") && l.dial_backoff_base_ms > l.dial_backoff_max_ms)
    l.dial_backoff_max_ms = l.dial_backoff_base_ms;
  if (!given("dial_backoff_base_ms") && l.dial_backoff_base_ms > l.dial_backoff_max_ms)
    l.dial_backoff_base_ms = l.dial_backoff_max_ms;
  if (l.low_watermark > l.high_watermark) fail("limits.low_watermark", "must not exceed limits.high_watermark");
  if (l.high_watermark > l.max_connections) fail("limits.high_watermark", "must not exceed limits.max_connections");
  if (l.dial_backoff_base_ms > l.dial_backoff_max_ms)
    fail("limits.dial_backoff_base_ms", "must not exceed limits.dial_backoff_max_ms");
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

Settings parse_settings(std::string_view config_json, const std::string &state_dir, const EnvLookup &env) {
  Settings s;
  json cfg = config_json.empty() ? json::object() : json::parse(config_json, nullptr, false);
  if (cfg.is_null()) cfg = json::object();
  if (cfg.is_discarded() || !cfg.is_object()) throw std::invalid_argument("p2p.config: must be an object");

  bool listen_given = false;
  std::vector<std::string> config_peers;
  for (const auto &[k, v] : cfg.items()) {
    if (k == "listen") {
      s.listen = read_addrs(v, k, false);
      listen_given = true;
    } else if (k == "bootstrap_peers") {
      config_peers = read_addrs(v, k, true);
    } else if (k == "assignment_file" || k == "key_file" || k == "agent_version") {
      if (!v.is_string()) fail(k, "must be a string");
      (k == "assignment_file" ? s.assignment_file : k == "key_file" ? s.key_file : s.agent_version) = v.get<std::string>();
    } else if (k == "announce_loopback") {
      if (!v.is_boolean()) fail(k, "must be true or false");
      s.announce_loopback = v.get<bool>();
    } else if (k == "limits") {
      read_limits(v, s.limits);
    } else {
      fail(k, "unknown key (known: listen, bootstrap_peers, assignment_file, key_file, agent_version, "
              "announce_loopback, limits)");
    }
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
  std::vector<std::string> assignment_peers;
  if (!s.assignment_file.empty()) assignment_peers = read_assignment_peers(s.assignment_file);
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
  if (s.agent_version.empty()) s.agent_version = "chorus-agent/0.1.0";
  return s;
}

}  // namespace chorus::p2p
