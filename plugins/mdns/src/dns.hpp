// DNS message codec for multicast DNS (RFC 1035 section 4, RFC 6762), sans I/O.
//
// The parser takes bytes straight from the network and never trusts them: every read is bounds
// checked, compression pointers must point strictly backwards (so a pointer chain cannot loop), a
// name is at most 255 bytes on the wire, and the number of records kept per message is capped
// whatever the header's counts claim. A malformed message yields false and a reason; nothing throws
// out of parse_message except std::bad_alloc, which the caps make practically impossible.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace chorus::mdns {

enum DnsType : uint16_t {
  kTypeA = 1,
  kTypePtr = 12,
  kTypeTxt = 16,
  kTypeAaaa = 28,
  kTypeSrv = 33,
  kTypeAny = 255,
};
constexpr uint16_t kClassIn = 1;
constexpr uint16_t kClassMask = 0x7fff;   // the top bit is QU (questions) / cache-flush (records)
constexpr uint16_t kFlagResponse = 0x8000;  // QR
constexpr uint16_t kFlagAuthoritative = 0x0400;
constexpr uint16_t kFlagTruncated = 0x0200;

constexpr size_t kMaxNameWire = 255;       // RFC 1035 2.3.4
constexpr size_t kMaxLabel = 63;
constexpr size_t kMaxMessage = 9000;       // RFC 6762 17: the largest mDNS message
constexpr size_t kMaxRecordsKept = 256;    // questions + records kept from one message
constexpr size_t kMaxPointerJumps = 64;

struct DnsQuestion {
  std::string name;  // labels joined by '.', without the trailing dot; case as received
  uint16_t type = 0;
  uint16_t klass = 0;  // without the QU bit
  bool unicast_response = false;
};

struct DnsRecord {
  std::string name;
  uint16_t type = 0;
  uint16_t klass = 0;  // without the cache-flush bit
  bool cache_flush = false;
  uint32_t ttl = 0;
  std::string ptr;               // kTypePtr: the target name
  std::vector<std::string> txt;  // kTypeTxt: the character-strings
};

struct DnsMessage {
  uint16_t id = 0;
  uint16_t flags = 0;
  std::vector<DnsQuestion> questions;
  std::vector<DnsRecord> answers;
  std::vector<DnsRecord> authorities;
  std::vector<DnsRecord> additionals;
  bool is_response() const { return (flags & kFlagResponse) != 0; }
};

// Parses one message. On failure returns false with a human-readable reason in *why (if given);
// `out` then holds whatever was parsed before the fault and must not be used.
bool parse_message(std::span<const uint8_t> data, DnsMessage &out, std::string *why);

// ASCII case-insensitive name comparison (DNS names compare that way, RFC 1035 2.3.3).
bool names_equal(std::string_view a, std::string_view b);

// Builds a message with name compression. Names are given as dotted text; no label may be empty or
// longer than 63 bytes, and a name is at most 255 bytes on the wire (the writer refuses otherwise).
class DnsWriter {
 public:
  DnsWriter(uint16_t id, uint16_t flags);

  // Sections must be filled in order: questions, then answers, then authorities, then additionals.
  bool question(std::string_view name, uint16_t type, uint16_t klass);
  bool ptr(int section, std::string_view name, uint32_t ttl, std::string_view target, bool cache_flush = false);
  bool txt(int section, std::string_view name, uint32_t ttl, const std::vector<std::string> &strings,
           bool cache_flush = true);

  size_t size() const { return buf_.size(); }
  std::vector<uint8_t> finish() &&;

  static constexpr int kAnswer = 0;
  static constexpr int kAuthority = 1;
  static constexpr int kAdditional = 2;

 private:
  bool name(std::string_view name);
  void u16(uint16_t v);
  void u32(uint32_t v);
  bool record_header(int section, std::string_view name, uint16_t type, uint16_t klass, uint32_t ttl);
  void count(int header_field);

  std::vector<uint8_t> buf_;
  std::unordered_map<std::string, uint16_t> suffixes_;  // lower-cased name suffix -> offset
  int section_ = -1;
};

}  // namespace chorus::mdns
