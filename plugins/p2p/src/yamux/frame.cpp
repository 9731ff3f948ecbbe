#include "yamux/frame.hpp"

namespace chorus::p2p::yamux {

namespace {

void put_be16(uint8_t *p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

void put_be32(uint8_t *p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

uint16_t get_be16(const uint8_t *p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

uint32_t get_be32(const uint8_t *p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}

}  // namespace

void encode_header(const Header &h, uint8_t *out) {
  out[0] = kVersion;
  out[1] = static_cast<uint8_t>(h.type);
  put_be16(out + 2, h.flags);
  put_be32(out + 4, h.stream_id);
  put_be32(out + 8, h.length);
}

void append_header(Bytes &out, const Header &h) {
  size_t at = out.size();
  out.resize(at + kHeaderSize);
  encode_header(h, out.data() + at);
}

const char *decode_header(const uint8_t *in, Header &out) {
  if (in[0] != kVersion) return "unsupported yamux version";
  if (in[1] > static_cast<uint8_t>(FrameType::go_away)) return "unknown yamux frame type";
  out.type = static_cast<FrameType>(in[1]);
  out.flags = get_be16(in + 2);
  out.stream_id = get_be32(in + 4);
  out.length = get_be32(in + 8);
  return nullptr;
}

}  // namespace chorus::p2p::yamux
