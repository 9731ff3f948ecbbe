// A minimal protobuf wire-format reader and writer (the subset libp2p messages use).
//
// Reading: ProtoReader walks the fields of one message in wire order. Unknown fields are the caller's to
// ignore; their values are still validated so that a truncated message is always reported as an error.
// Groups (wire types 3 and 4) and field number 0 are rejected: no libp2p schema uses them.
//
// Writing: ProtoWriter appends fields in the order the caller writes them. Signed structures must be
// encoded deterministically, so callers write fields in ascending field-number order with minimal varints
// (which is all this writer produces).
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "wire/bytes.hpp"

namespace chorus::p2p {

enum ProtoWireType : uint32_t {
  kWireVarint = 0,
  kWireFixed64 = 1,
  kWireBytes = 2,
  kWireFixed32 = 5,
};

class ProtoReader {
 public:
  explicit ProtoReader(BytesView data) : rest_(data) {}

  // Advances to the next field. Returns false at the end of the message or on error (see ok()).
  bool next() {
    if (error_ != nullptr || rest_.empty()) return false;
    uint64_t key = 0;
    if (!read_varint(key)) return fail("truncated or overlong field key");
    uint64_t field = key >> 3;
    uint32_t wt = static_cast<uint32_t>(key & 7);
    if (field == 0) return fail("field number 0");
    if (field > kMaxField) return fail("field number out of range");
    field_ = static_cast<uint32_t>(field);
    wire_type_ = wt;
    value_ = 0;
    bytes_ = {};
    switch (wt) {
      case kWireVarint:
        if (!read_varint(value_)) return fail("truncated or overlong varint");
        return true;
      case kWireFixed64:
        if (rest_.size() < 8) return fail("truncated fixed64");
        bytes_ = rest_.first(8);
        value_ = load_le(bytes_);
        rest_ = rest_.subspan(8);
        return true;
      case kWireFixed32:
        if (rest_.size() < 4) return fail("truncated fixed32");
        bytes_ = rest_.first(4);
        value_ = load_le(bytes_);
        rest_ = rest_.subspan(4);
        return true;
      case kWireBytes: {
        uint64_t len = 0;
        if (!read_varint(len)) return fail("truncated or overlong length");
        if (len > rest_.size()) return fail("length-delimited field runs past the end of the message");
        bytes_ = rest_.first(static_cast<size_t>(len));
        rest_ = rest_.subspan(static_cast<size_t>(len));
        return true;
      }
      case 3:
      case 4:
        return fail("groups are not supported");
      default:
        return fail("invalid wire type");
    }
  }

  uint32_t field() const { return field_; }
  uint32_t wire_type() const { return wire_type_; }
  // The value of a varint field (wire type 0); for fixed32/fixed64 fields, the little-endian value.
  uint64_t varint() const { return value_; }
  // The payload of a length-delimited field (wire type 2); for fixed fields, the raw bytes.
  BytesView bytes() const { return bytes_; }
  std::string_view string() const { return as_string_view(bytes_); }

  bool ok() const { return error_ == nullptr; }
  const char *error() const { return error_ != nullptr ? error_ : ""; }

 private:
  static constexpr uint64_t kMaxField = (1u << 29) - 1;

  bool fail(const char *why) {
    error_ = why;
    return false;
  }

  // Protobuf varint: up to 10 bytes, non-minimal encodings allowed (protobuf encoders may pad),
  // bits beyond 64 rejected.
  bool read_varint(uint64_t &out) {
    uint64_t v = 0;
    for (size_t i = 0; i < 10 && i < rest_.size(); ++i) {
      uint8_t b = rest_[i];
      uint64_t bits = b & 0x7f;
      if (i == 9 && bits > 1) return false;
      v |= bits << (7 * i);
      if ((b & 0x80) == 0) {
        out = v;
        rest_ = rest_.subspan(i + 1);
        return true;
      }
    }
    return false;
  }

  static uint64_t load_le(BytesView b) {
    uint64_t v = 0;
    for (size_t i = b.size(); i-- > 0;) v = v << 8 | b[i];
    return v;
  }

  BytesView rest_;
  uint32_t field_ = 0;
  uint32_t wire_type_ = 0;
  uint64_t value_ = 0;
  BytesView bytes_;
  const char *error_ = nullptr;
};

class ProtoWriter {
 public:
  explicit ProtoWriter(Bytes &out) : out_(out) {}

  void varint(uint32_t field, uint64_t v) {
    tag(field, kWireVarint);
    put_varint(v);
  }
  void bytes(uint32_t field, BytesView b) {
    tag(field, kWireBytes);
    put_varint(b.size());
    out_.insert(out_.end(), b.begin(), b.end());
  }
  void string(uint32_t field, std::string_view s) { bytes(field, as_bytes(s)); }
  void fixed64(uint32_t field, uint64_t v) {
    tag(field, kWireFixed64);
    for (int i = 0; i < 8; ++i) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void fixed32(uint32_t field, uint32_t v) {
    tag(field, kWireFixed32);
    for (int i = 0; i < 4; ++i) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }

  Bytes &out() { return out_; }

 private:
  void tag(uint32_t field, uint32_t wire_type) { put_varint(static_cast<uint64_t>(field) << 3 | wire_type); }
  void put_varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<uint8_t>(v | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<uint8_t>(v));
  }

  Bytes &out_;
};

}  // namespace chorus::p2p
