// Unsigned varints (multiformats/unsigned-varint) and length-prefixed messages.
//
// A uvarint is little-endian base-128: 7 value bits per byte, high bit set on every byte but the last.
// Multiformats requires the minimal encoding and caps it at 9 bytes (63 bits); both rules are enforced
// here so that a peer cannot make us accept two encodings of one value or read forever.
// (Protobuf varints follow looser rules; protobuf.hpp has its own reader.)
#pragma once

#include <cstddef>
#include <cstdint>

#include "wire/bytes.hpp"

namespace chorus::p2p {

constexpr size_t kMaxUvarintLen = 10;  // enough output room for any uint64_t

// Writes v to out (which must have kMaxUvarintLen bytes of room); returns the number of bytes written.
inline size_t put_uvarint(uint64_t v, uint8_t *out) {
  size_t n = 0;
  while (v >= 0x80) {
    out[n++] = static_cast<uint8_t>(v | 0x80);
    v >>= 7;
  }
  out[n++] = static_cast<uint8_t>(v);
  return n;
}

inline void append_uvarint(Bytes &out, uint64_t v) {
  uint8_t buf[kMaxUvarintLen];
  size_t n = put_uvarint(v, buf);
  out.insert(out.end(), buf, buf + n);
}

inline size_t uvarint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

enum class VarintStatus {
  ok,         // value and used are set
  need_more,  // input ended inside the varint (and the byte limit was not reached yet)
  invalid,    // non-minimal, longer than max_bytes, or overflows 64 bits
};

// Decodes one multiformats uvarint from the start of in. max_bytes is the length cap (9 => 63 bits).
inline VarintStatus read_uvarint(BytesView in, uint64_t &value, size_t &used, size_t max_bytes = 9) {
  if (max_bytes > kMaxUvarintLen) max_bytes = kMaxUvarintLen;
  uint64_t v = 0;
  for (size_t i = 0; i < max_bytes; ++i) {
    if (i >= in.size()) return VarintStatus::need_more;
    uint8_t b = in[i];
    uint64_t bits = b & 0x7f;
    // The 10th byte may only contribute bit 63.
    if (i == 9 && bits > 1) return VarintStatus::invalid;
    v |= bits << (7 * i);
    if ((b & 0x80) == 0) {
      // A trailing zero byte means a shorter encoding existed (`81 00` is 1 written in two bytes).
      if (b == 0 && i > 0) return VarintStatus::invalid;
      value = v;
      used = i + 1;
      return VarintStatus::ok;
    }
  }
  return VarintStatus::invalid;
}

// Appends uvarint(len) || msg.
inline void append_lp(Bytes &out, BytesView msg) {
  append_uvarint(out, msg.size());
  out.insert(out.end(), msg.begin(), msg.end());
}

enum class LpStatus {
  message,    // `message` holds one complete message
  need_more,  // all of `in` was consumed; feed more
  too_large,  // the announced length exceeds max_message (sticky)
  invalid,    // the length prefix is not a valid uvarint (sticky)
};

// Incremental reader of uvarint-length-prefixed messages.
//
// next() consumes bytes from the front of `in` (advancing the view) and returns at most one message.
// When a whole message lies inside `in`, `message` points into `in` (no copy). Only a message split
// across feeds is assembled in `scratch`, which the caller must pass unchanged on every call. A returned
// view stays valid until the next call or until the caller's input buffer goes away, whichever is first.
// Call next() again with the rest of `in` until it returns need_more.
class LpReader {
 public:
  explicit LpReader(size_t max_message) : max_message_(max_message) {}

  LpStatus next(BytesView &in, BytesView &message, Bytes &scratch) {
    if (failed_ != LpStatus::need_more) return failed_;
    if (!have_length_) {
      LpStatus st = read_length(in);
      if (st != LpStatus::message) return st;
      scratch.clear();
    }
    if (scratch.empty() && in.size() >= want_) {
      message = in.first(want_);
      in = in.subspan(want_);
      have_length_ = false;
      return LpStatus::message;
    }
    size_t take = want_ - scratch.size();
    if (take > in.size()) take = in.size();
    scratch.insert(scratch.end(), in.begin(), in.begin() + take);
    in = in.subspan(take);
    if (scratch.size() < want_) return LpStatus::need_more;
    message = BytesView(scratch);
    have_length_ = false;
    return LpStatus::message;
  }

  // True while a message (or its length prefix) has been partly read: useful to tell a clean EOF
  // from a truncated message.
  bool mid_message() const { return have_length_ || header_len_ > 0; }

  void reset() {
    have_length_ = false;
    header_len_ = 0;
    failed_ = LpStatus::need_more;
  }

 private:
  // Parses the length prefix, possibly across calls. Returns `message` once the length is known.
  LpStatus read_length(BytesView &in) {
    uint64_t len = 0;
    size_t used = 0;
    VarintStatus vs;
    if (header_len_ == 0) {
      vs = read_uvarint(in, len, used);
      if (vs == VarintStatus::ok) in = in.subspan(used);
      if (vs == VarintStatus::need_more) {
        // Fewer than 9 bytes, all with the continuation bit: keep them for the next feed.
        for (uint8_t b : in) header_[header_len_++] = b;
        in = in.subspan(in.size());
        return LpStatus::need_more;
      }
    } else {
      vs = VarintStatus::need_more;
      while (vs == VarintStatus::need_more && !in.empty()) {
        header_[header_len_++] = in[0];
        in = in.subspan(1);
        vs = read_uvarint(BytesView(header_, header_len_), len, used);
      }
      if (vs == VarintStatus::need_more) return LpStatus::need_more;
      header_len_ = 0;
    }
    if (vs == VarintStatus::invalid) return failed_ = LpStatus::invalid;
    if (len > max_message_) return failed_ = LpStatus::too_large;
    want_ = static_cast<size_t>(len);
    have_length_ = true;
    return LpStatus::message;
  }

  size_t max_message_;
  size_t want_ = 0;
  bool have_length_ = false;
  uint8_t header_[kMaxUvarintLen] = {};
  size_t header_len_ = 0;
  LpStatus failed_ = LpStatus::need_more;  // need_more = not failed
};

}  // namespace chorus::p2p
