// The age v1 file format (age-encryption.org/v1), X25519 recipients only. The format
// facts this code follows are summarised in plugins/dht/README.md ("Role-encrypted content").
//
// A file is a text header (the version line, one "-> X25519 <share>" stanza per recipient wrapping
// the 16-byte file key, and an HMAC of the header) followed by a binary payload: a 16-byte nonce and
// the plaintext in 64 KiB ChaCha20-Poly1305 chunks (the STREAM construction).
//
// decrypt() either returns the exact plaintext or throws AgeError; it never returns bytes that were
// not authenticated. Hostile input is bounded: the header size, the line length and the number of
// stanzas have limits, and malformed or non-canonical encodings are refused.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

#include "kad/key.hpp"

namespace chorus::dht::age {

inline constexpr size_t kFileKeySize = 16;
inline constexpr size_t kChunkSize = 64 * 1024;        // plaintext bytes per payload chunk
inline constexpr size_t kMaxHeaderSize = 128 * 1024;   // bytes up to and including the MAC line
inline constexpr size_t kMaxLineLength = 4096;         // one header line, without its LF
inline constexpr size_t kMaxStanzas = 256;             // recipients in one file (read or written)

// Why a file was refused. The names say what to tell the user; errc_name() gives a stable token.
enum class Errc {
  kNotAgeFile,          // does not start with the age version line
  kMalformedArmor,      // ASCII armor ("-----BEGIN AGE ENCRYPTED FILE-----") that breaks the strict PEM rules
  kUnsupportedVersion,  // an age header of another version than v1
  kMalformedHeader,     // the header breaks the format (grammar, base64, stanza rules, limits)
  kNoIdentityMatches,   // no stanza could be unwrapped with the identities given
  kHeaderMacMismatch,   // the file key was found but the header was altered
  kPayloadTruncated,    // the payload ends early (no nonce, no final chunk)
  kPayloadAuthFailed,   // a payload chunk fails authentication (tampered or cut mid-chunk)
  kTrailingData,        // bytes after the final chunk
  kEmptyLastChunk,      // an empty final chunk after a full one (the format forbids it)
  kBadKey,              // a recipient or identity string that does not parse, or a low-order key
  kBadArgument,         // encrypt() with no recipients or too many
  kCryptoFailure,       // the crypto library failed (out of memory, provider missing)
};

const char *errc_name(Errc code);

class AgeError : public std::runtime_error {
 public:
  AgeError(Errc code, const std::string &message) : std::runtime_error(message), code_(code) {}
  Errc code() const { return code_; }

 private:
  Errc code_;
};

// A public key, written "age1..." (bech32, lowercase).
class X25519Recipient {
 public:
  static X25519Recipient parse(std::string_view text);  // throws AgeError(kBadKey)
  static X25519Recipient from_bytes(const std::array<uint8_t, 32> &public_key);
  std::string to_string() const;
  const std::array<uint8_t, 32> &bytes() const { return public_key_; }
  bool operator==(const X25519Recipient &other) const { return public_key_ == other.public_key_; }

 private:
  std::array<uint8_t, 32> public_key_{};
};

// A secret key, written "AGE-SECRET-KEY-1..." (bech32, uppercase). The secret is wiped on destruction.
class X25519Identity {
 public:
  static X25519Identity generate();
  static X25519Identity parse(std::string_view text);  // throws AgeError(kBadKey)
  static X25519Identity from_bytes(const std::array<uint8_t, 32> &secret);

  X25519Identity(const X25519Identity &other) = default;
  X25519Identity &operator=(const X25519Identity &other) = default;
  ~X25519Identity();

  std::string to_string() const;
  const X25519Recipient &recipient() const { return recipient_; }
  const std::array<uint8_t, 32> &secret() const { return secret_; }

 private:
  X25519Identity() = default;
  std::array<uint8_t, 32> secret_{};
  X25519Recipient recipient_;
};

// Encrypts to every recipient (1..kMaxStanzas): a fresh file key, nonce and ephemeral keys each call.
Bytes encrypt(BytesView plaintext, std::span<const X25519Recipient> recipients);

// Decrypts with the first identity that unwraps a stanza; throws AgeError (see Errc). Reads the
// binary form and the ASCII-armored one.
Bytes decrypt(BytesView file, std::span<const X25519Identity> identities);

// The ASCII armor: strict PEM, label "AGE ENCRYPTED FILE", padded base64 in 64-column lines, LF
// line ends. dearmor() also accepts CRLF line ends and whitespace around the block, nothing else.
std::string armor(BytesView file);
Bytes dearmor(BytesView armored);  // throws AgeError(kMalformedArmor)
bool is_armored(BytesView file);   // starts (after whitespace) with the armor's BEGIN line

// The building blocks of encrypt(), exposed so tests can build the edge cases of the format (files
// with a known file key, unusual stanzas, odd chunk layouts) that encrypt() never writes.
namespace detail {
std::array<uint8_t, 32> hkdf_sha256(BytesView ikm, BytesView salt, std::string_view info);
// HMAC-SHA-256 keyed with HKDF(file key, "header") over the header through "---".
std::array<uint8_t, 32> header_mac(BytesView file_key, BytesView header_through_dashes);
// The whole header (through the MAC line's LF) wrapping file_key for each recipient.
std::string write_header(BytesView file_key, std::span<const X25519Recipient> recipients);
}  // namespace detail

}  // namespace chorus::dht::age
