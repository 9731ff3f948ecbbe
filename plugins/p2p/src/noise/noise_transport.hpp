// The encrypted channel after a Noise handshake (sans I/O). Wire format of every frame:
//   u16 big-endian length || ChaCha20-Poly1305 ciphertext (plaintext <= 65519 bytes || 16-byte tag)
// with empty associated data and a per-direction nonce counting from 0.
#pragma once

#include <cstddef>
#include <string>

#include "wire/bytes.hpp"
#include "noise/noise_cipher.hpp"

namespace chorus::p2p {

class NoiseTransport {
 public:
  static constexpr size_t kFrameHeader = 2;
  static constexpr size_t kMaxFramePlaintext = noise::kMaxPlaintext;  // 65519: what decrypt() accepts
  // What encrypt() puts in a frame: the largest multiple of 512 that fits. OpenSSL's vectorised
  // ChaCha20-Poly1305 seals such a frame about 30% faster per byte than one of 65519 bytes
  // (bench_p2p, BM_NoiseSealFrame), and the peer decrypts the same lengths.
  static constexpr size_t kSendFramePlaintext = kMaxFramePlaintext / 512 * 512;  // 65024

  // A transport that refuses everything (error "no keys"): what a failed or unfinished handshake splits to.
  NoiseTransport();
  // `send` encrypts what we write, `recv` decrypts what the peer writes. NoiseHandshake::split() builds
  // these; tests may build one from known keys.
  NoiseTransport(noise::CipherState send, noise::CipherState recv);

  NoiseTransport(NoiseTransport &&) noexcept = default;
  NoiseTransport &operator=(NoiseTransport &&) noexcept = default;

  // Appends the plaintext to `out` as frames of kSendFramePlaintext bytes (the last one shorter), growing
  // `out` once. Empty plaintext appends nothing. Returns false (and appends nothing) when the send nonce is
  // exhausted or the transport has failed; the connection must then be closed.
  bool encrypt(BytesView plaintext, Bytes &out);
  bool encrypt(BytesView plaintext, WireBytes &out);

  // Bytes encrypt() appends for a plaintext of this size.
  static size_t encrypted_size(size_t plaintext_len);

  enum class Status { ok, need_more, failed };
  // Decrypts every whole frame at the front of `in`, appending the plaintext to `plain`; `consumed` is
  // the number of bytes of `in` used (whole frames only: the caller keeps the rest and passes it again
  // with more bytes). Returns ok when at least one frame was decrypted, need_more when `in` holds no
  // whole frame, failed on a frame shorter than the tag, a bad tag or an exhausted nonce (sticky; see
  // error()). On failure the plaintext of the frames before the bad one is still appended and counted.
  Status decrypt(BytesView in, size_t &consumed, Bytes &plain);

  bool failed() const { return !error_.empty(); }
  const std::string &error() const { return error_; }

  // Exposed for tests of the exhaustion guard.
  noise::CipherState &send_cipher() { return send_; }
  noise::CipherState &recv_cipher() { return recv_; }

 private:
  template <class Buffer>
  bool append_frames(BytesView plaintext, Buffer &out);

  noise::CipherState send_;
  noise::CipherState recv_;
  std::string error_;
};

}  // namespace chorus::p2p
