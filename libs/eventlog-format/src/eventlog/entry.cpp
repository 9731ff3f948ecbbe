#include "eventlog/entry.hpp"

#include <chorus/time_text.hpp>

#include <ctime>

#include <nlohmann/json.hpp>
#include <sodium.h>

namespace chorus::eventlog {

namespace {

void put_u32(p2p::Bytes &out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

void put_field(p2p::Bytes &out, std::string_view s) {
  put_u32(out, static_cast<uint32_t>(s.size()));
  out.insert(out.end(), s.begin(), s.end());
}

bool digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

p2p::Bytes hash_input(const Entry &e) {
  p2p::Bytes out;
  out.reserve(kHashDomain.size() + 8 + 16 + e.timestamp.size() + e.author.size() + e.type.size() + e.data.size() + 32);
  for (char c : kHashDomain) out.push_back(static_cast<uint8_t>(c));
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(e.index >> shift));
  put_field(out, e.timestamp);
  put_field(out, e.author);
  put_field(out, e.type);
  put_field(out, e.data);
  out.insert(out.end(), e.prev_hash.begin(), e.prev_hash.end());
  return out;
}

Hash compute_hash(const Entry &e) {
  const p2p::Bytes in = hash_input(e);
  Hash h{};
  crypto_hash_sha256(h.data(), in.data(), in.size());
  return h;
}

bool valid_type(std::string_view type) {
  if (type.empty() || type.size() > kMaxTypeBytes) return false;
  for (char c : type)
    if (!((c >= 'a' && c <= 'z') || digit(c) || c == '_' || c == '.')) return false;
  return true;
}

bool valid_timestamp(std::string_view ts) {
  static constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:dd.dddZ";
  if (ts.size() != kShape.size()) return false;
  for (size_t i = 0; i < ts.size(); ++i)
    if (kShape[i] == 'd' ? !digit(ts[i]) : ts[i] != kShape[i]) return false;
  return true;
}

std::string format_timestamp(std::chrono::system_clock::time_point t) { return chorus::rfc3339_utc_ms(t); }

std::optional<std::string> canonical_json(std::string_view text, std::string *why) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    if (why) *why = "data is not valid JSON";
    return std::nullopt;
  }
  try {
    return j.dump();  // strict: invalid UTF-8 throws rather than being replaced
  } catch (const nlohmann::json::exception &) {
    if (why) *why = "data is not valid UTF-8";
    return std::nullopt;
  }
}

std::string to_hex(const uint8_t *data, size_t len) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(len * 2);
  for (size_t i = 0; i < len; ++i) {
    s += kDigits[data[i] >> 4];
    s += kDigits[data[i] & 15];
  }
  return s;
}

std::string entry_json(const Entry &e) {
  nlohmann::json j;
  j["index"] = e.index;
  j["timestamp"] = e.timestamp;
  j["author"] = e.author;
  j["type"] = e.type;
  auto data = nlohmann::json::parse(e.data, nullptr, false);
  j["data"] = data.is_discarded() ? nlohmann::json(e.data) : std::move(data);
  j["hash"] = to_hex(e.hash);
  j["prev_hash"] = to_hex(e.prev_hash);
  j["signature"] = to_hex(e.signature);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace chorus::eventlog
