#include "settings.hpp"

#include <stdexcept>

#include <nlohmann/json.hpp>

namespace chorus::mdns {
namespace {

using json = nlohmann::json;

[[noreturn]] void fail(const std::string &key, const std::string &what) {
  throw std::invalid_argument("mdns.config." + key + ": " + what);
}

uint32_t read_u32(const json &v, const std::string &key, uint32_t lo, uint32_t hi) {
  if (!v.is_number_integer() && !v.is_number_unsigned())
    fail(key, "must be an integer between " + std::to_string(lo) + " and " + std::to_string(hi));
  const auto n = v.get<int64_t>();
  if (n < lo || n > hi)
    fail(key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + " (got " + std::to_string(n) + ")");
  return static_cast<uint32_t>(n);
}

bool read_bool(const json &v, const std::string &key) {
  if (!v.is_boolean()) fail(key, "must be true or false");
  return v.get<bool>();
}

// The tag becomes the DNS label "_<tag>": at most 63 bytes, letters, digits, '-' and '_'.
void check_tag(const std::string &tag) {
  if (tag.empty() || tag.size() > 62) fail("service_tag", "must be 1 to 62 characters");
  for (char c : tag) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) fail("service_tag", "'" + tag + "' may contain only letters, digits, '-' and '_'");
  }
}

}  // namespace

Settings parse_settings(std::string_view config_json) {
  Settings s;
  json cfg = config_json.empty() ? json::object() : json::parse(config_json, nullptr, false);
  if (cfg.is_null()) cfg = json::object();
  if (cfg.is_discarded() || !cfg.is_object()) throw std::invalid_argument("mdns.config: must be an object");
  for (const auto &[k, v] : cfg.items()) {
    if (k == "service_tag") {
      if (!v.is_string()) fail(k, "must be a string");
      s.service_tag = v.get<std::string>();
      check_tag(s.service_tag);
    } else if (k == "query_interval_ms") {
      s.query_interval_ms = read_u32(v, k, 100, 3600000);
    } else if (k == "ttl_s") {
      s.ttl_s = read_u32(v, k, 1, 4500);
    } else if (k == "connect_timeout_ms") {
      s.connect_timeout_ms = read_u32(v, k, 100, 600000);
    } else if (k == "queue_size") {
      s.queue_size = read_u32(v, k, 1, 10000);
    } else if (k == "max_concurrent_connects") {
      s.max_concurrent_connects = read_u32(v, k, 1, 256);
    } else if (k == "max_peers") {
      s.max_peers = read_u32(v, k, 1, 100000);
    } else if (k == "interface_scan_ms") {
      s.interface_scan_ms = read_u32(v, k, 100, 3600000);
    } else if (k == "response_delay_max_ms") {
      s.response_delay_max_ms = read_u32(v, k, 0, 1000);
    } else if (k == "packets_per_second") {
      s.packets_per_second = read_u32(v, k, 1, 1000000);
    } else if (k == "port") {
      s.port = read_u32(v, k, 1, 65535);
    } else if (k == "ipv4") {
      s.ipv4 = read_bool(v, k);
    } else if (k == "ipv6") {
      s.ipv6 = read_bool(v, k);
    } else if (k == "auto_connect") {
      s.auto_connect = read_bool(v, k);
    } else if (k == "interfaces") {
      if (!v.is_array()) fail(k, "must be a list of interface names");
      for (size_t i = 0; i < v.size(); ++i) {
        if (!v[i].is_string() || v[i].get<std::string>().empty() || v[i].get<std::string>().size() > 15)
          fail(k + "[" + std::to_string(i) + "]", "must be an interface name (1-15 characters)");
        s.interfaces.push_back(v[i].get<std::string>());
      }
    } else {
      fail(k, "unknown key (known: service_tag, query_interval_ms, ttl_s, connect_timeout_ms, queue_size, "
              "max_concurrent_connects, max_peers, interface_scan_ms, response_delay_max_ms, packets_per_second, "
              "port, ipv4, ipv6, auto_connect, interfaces)");
    }
  }
  if (!s.ipv4 && !s.ipv6) fail("ipv4", "ipv4 and ipv6 cannot both be false");
  return s;
}

}  // namespace chorus::mdns
