#include "noise/noise_transport.hpp"

#include <algorithm>
#include <utility>

namespace chorus::p2p {

NoiseTransport::NoiseTransport() : error_("no keys: the noise handshake did not complete") {}

NoiseTransport::NoiseTransport(noise::CipherState send, noise::CipherState recv)
    : send_(std::move(send)), recv_(std::move(recv)) {
  if (!send_.has_key() || !recv_.has_key()) error_ = "no keys: the noise handshake did not complete";
}

size_t NoiseTransport::encrypted_size(size_t plaintext_len) {
  size_t frames = (plaintext_len + kSendFramePlaintext - 1) / kSendFramePlaintext;
  return plaintext_len + frames * (kFrameHeader + noise::kTagLen);
}

template <class Buffer>
bool NoiseTransport::append_frames(BytesView plaintext, Buffer &out) {
  if (failed()) return false;
  if (plaintext.empty()) return true;
  size_t frames = (plaintext.size() + kSendFramePlaintext - 1) / kSendFramePlaintext;
  // Refuse up front rather than half-writing a message whose tail cannot be sent.
  if (frames > UINT64_MAX - send_.nonce()) {
    error_ = "noise send nonce exhausted";
    return false;
  }
  const size_t start = out.size();
  size_t pos = start;
  out.resize(pos + encrypted_size(plaintext.size()));
  uint8_t *dst = out.data();
  for (size_t off = 0; off < plaintext.size(); off += kSendFramePlaintext) {
    size_t len = std::min(kSendFramePlaintext, plaintext.size() - off);
    size_t frame_len = len + noise::kTagLen;
    dst[pos] = static_cast<uint8_t>(frame_len >> 8);
    dst[pos + 1] = static_cast<uint8_t>(frame_len);
    if (!send_.encrypt_with_ad({}, plaintext.data() + off, len, dst + pos + kFrameHeader)) {
      // Only an OpenSSL failure gets here (the nonce was checked); the nonce may have moved, so the
      // stream of frames cannot continue.
      out.resize(start);
      error_ = "noise encryption failed";
      return false;
    }
    pos += kFrameHeader + frame_len;
  }
  return true;
}

bool NoiseTransport::encrypt(BytesView plaintext, Bytes &out) { return append_frames(plaintext, out); }
bool NoiseTransport::encrypt(BytesView plaintext, WireBytes &out) { return append_frames(plaintext, out); }

NoiseTransport::Status NoiseTransport::decrypt(BytesView in, size_t &consumed, Bytes &plain) {
  consumed = 0;
  if (failed()) return Status::failed;
  bool any = false;
  while (in.size() - consumed >= kFrameHeader) {
    const uint8_t *p = in.data() + consumed;
    size_t frame_len = static_cast<size_t>(p[0]) << 8 | p[1];
    if (frame_len < noise::kTagLen) {
      error_ = "noise frame of " + std::to_string(frame_len) + " bytes is shorter than its 16-byte tag";
      return Status::failed;
    }
    if (in.size() - consumed - kFrameHeader < frame_len) break;
    size_t start = plain.size();
    plain.resize(start + frame_len - noise::kTagLen);
    if (!recv_.decrypt_with_ad({}, p + kFrameHeader, frame_len, plain.data() + start)) {
      plain.resize(start);
      error_ = recv_.exhausted() ? "noise receive nonce exhausted"
                                 : "noise frame failed authentication (corrupted or forged)";
      return Status::failed;
    }
    consumed += kFrameHeader + frame_len;
    any = true;
  }
  return any ? Status::ok : Status::need_more;
}

}  // namespace chorus::p2p
