// Yamux frame headers (/yamux/1.0.0, the hashicorp spec as used by libp2p).
//
// Every frame starts with a 12-byte big-endian header:
//   version u8 (always 0) | type u8 | flags u16 | stream_id u32 | length u32
// For Data frames `length` is the number of payload bytes that follow; for the other types it is a
// value (window delta, ping opaque, go-away code) and nothing follows.
#pragma once

#include <cstddef>
#include <cstdint>

#include "wire/bytes.hpp"

namespace chorus::p2p::yamux {

inline constexpr size_t kHeaderSize = 12;
inline constexpr uint8_t kVersion = 0;
// Every stream starts with this window in each direction; larger windows are granted by deltas.
inline constexpr uint32_t kDefaultWindow = 256 * 1024;

enum class FrameType : uint8_t { data = 0, window_update = 1, ping = 2, go_away = 3 };

// Flags ride on Data and Window Update frames (SYN/ACK also on Ping: request/reply).
enum : uint16_t { kFlagSyn = 0x1, kFlagAck = 0x2, kFlagFin = 0x4, kFlagRst = 0x8 };

// Go Away codes.
enum : uint32_t { kGoAwayNormal = 0, kGoAwayProtocolError = 1, kGoAwayInternalError = 2 };

struct Header {
  FrameType type = FrameType::data;
  uint16_t flags = 0;
  uint32_t stream_id = 0;
  uint32_t length = 0;

  bool operator==(const Header &) const = default;
};

// Writes the 12 header bytes to out.
void encode_header(const Header &h, uint8_t *out);
void append_header(Bytes &out, const Header &h);

// Parses 12 bytes at in. Returns nullptr on success, else a static human-readable reason (unknown
// version or type). Unknown flag bits are tolerated, as the reference implementations do.
const char *decode_header(const uint8_t *in, Header &out);

}  // namespace chorus::p2p::yamux
