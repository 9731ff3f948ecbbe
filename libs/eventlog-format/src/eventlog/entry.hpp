// One event log entry and its hash encoding (docs/eventlog.md has the same definition in prose).
//
// The hash of an entry is SHA-256 over a length-prefixed binary concatenation of its fields:
//
//   "chorus.eventlog.v1" 0x00                  the domain tag (19 bytes): the hash means nothing else
//   index                                       u64, big-endian
//   timestamp, author, type, data               each: u32 big-endian byte length, then the UTF-8 bytes
//   prev_hash                                   32 bytes (all zeros for entry 0)
//
// Length prefixes make the encoding unambiguous without escaping, and it is computed over the bytes
// as stored, so a verifier never has to re-canonicalise JSON (canonical JSON is easy to get subtly
// wrong across libraries: number formats, Unicode escapes). `data` is still written in one canonical
// form (compact, object keys sorted, nlohmann::json's dump) so equal data gives equal bytes.
// The signature is Ed25519 by the author's identity key over the 32 hash bytes.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "wire/bytes.hpp"

namespace chorus::eventlog {

using Hash = std::array<uint8_t, 32>;
using Signature = std::array<uint8_t, 64>;

inline constexpr std::string_view kHashDomain{"chorus.eventlog.v1\0", 19};
inline constexpr size_t kMaxTypeBytes = 64;

struct Entry {
  uint64_t index = 0;
  std::string timestamp;  // RFC 3339 UTC with milliseconds: 2026-12-06T22:10:00.123Z
  std::string author;     // base58 libp2p peer id of the signer
  std::string type;       // [a-z0-9_.]{1,64}
  std::string data;       // JSON text (canonical at append time)
  Hash prev_hash{};
  Hash hash{};
  Signature signature{};
};

// The bytes the hash is computed over (the layout above).
p2p::Bytes hash_input(const Entry &e);
Hash compute_hash(const Entry &e);

// [a-z0-9_.]{1,64}
bool valid_type(std::string_view type);
// YYYY-MM-DDTHH:MM:SS.mmmZ exactly (the only form this log writes).
bool valid_timestamp(std::string_view ts);
std::string format_timestamp(std::chrono::system_clock::time_point t);
// Parses JSON text and returns its canonical form (compact, keys sorted); nothing if not JSON.
std::optional<std::string> canonical_json(std::string_view text, std::string *why);

std::string to_hex(const uint8_t *data, size_t len);
template <size_t N>
std::string to_hex(const std::array<uint8_t, N> &a) {
  return to_hex(a.data(), a.size());
}

// The entry as the HTTP API and query_json show it (hash, prev_hash, signature in hex; data as JSON).
std::string entry_json(const Entry &e);

}  // namespace chorus::eventlog
