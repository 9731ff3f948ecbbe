// The CHORUS envelope (docs/protocols.md, PubSub): the JSON object CHORUS agents put in every message
// on their topics, {"type","from","timestamp","data","hop_count"}, and its message types.
//
// Pure functions, no state: the node builds envelopes for publish and parses received data to hand
// the type to handlers and to apply the hop limit. Bytes that are not an envelope are not an error:
// they are delivered as they are (raw publications, HMMM rooms) with type "".
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace chorus::gossip {

// The message types CHORUS agents exchange. Unknown types are legal on the wire (newer agents add
// types): they parse as kUnknown and keep their string.
enum class MessageType {
  kUnknown,
  kTaskAnnouncement,
  kTaskClaim,
  kTaskProgress,
  kTaskComplete,
  kCapabilityBroadcast,
  kAvailabilityBroadcast,
  kMetaDiscussion,
  kTaskHelpRequest,
  kTaskHelpResponse,
  kCoordinationRequest,
  kCoordinationComplete,
  kDependencyAlert,
  kEscalationTrigger,
};
inline constexpr int kKnownMessageTypes = 13;

// "task_announcement", ...; "" for kUnknown.
const char *message_type_name(MessageType t);
MessageType message_type_from(std::string_view wire);

// Longest "type" accepted when publishing (received envelopes are not limited: their size is).
inline constexpr size_t kMaxTypeLength = 128;
// Deepest JSON nesting accepted in an envelope; deeper data is delivered as raw bytes.
inline constexpr size_t kMaxEnvelopeDepth = 64;

struct Envelope {
  std::string type;
  std::string from;       // the author's agent id
  std::string timestamp;  // RFC 3339 UTC
  nlohmann::json data;    // any JSON value ({} when published without data)
  uint32_t hop_count = 0; // HMMM relays count hops; written only when > 0

  MessageType kind() const { return message_type_from(type); }
};

// "2026-12-06T18:00:00.123Z": UTC with milliseconds.
std::string rfc3339_utc(std::chrono::system_clock::time_point t);
// Parses what rfc3339_utc writes and any RFC 3339 date-time (fraction and offset optional forms);
// milliseconds since the Unix epoch, or nothing.
std::optional<int64_t> parse_rfc3339_ms(std::string_view text);

// The envelope as compact JSON (keys type, from, timestamp, data, then hop_count when > 0).
std::string build_envelope(const Envelope &e);

// Parses message data as an envelope: a JSON object whose "type" is a string; "from" and
// "timestamp" are strings when present, "hop_count" a non-negative integer below 2^32 when present,
// "data" any value (null when absent). Anything else returns nothing with *why set (why may be null).
std::optional<Envelope> parse_envelope(std::string_view bytes, std::string *why);

}  // namespace chorus::gossip
