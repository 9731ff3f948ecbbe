#include "age/age.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <sodium.h>

#include <algorithm>
#include <array>
#include <memory>
#include <optional>
#include <vector>

#include "age/bech32.hpp"

namespace chorus::dht::age {
namespace {

constexpr std::string_view kVersionPrefix = "age-encryption.org/";
constexpr std::string_view kVersionLine = "age-encryption.org/v1";
constexpr std::string_view kArmorBegin = "-----BEGIN AGE ENCRYPTED FILE-----";
constexpr std::string_view kArmorEnd = "-----END AGE ENCRYPTED FILE-----";
constexpr std::string_view kWhitespace = " \t\r\n";
constexpr std::string_view kRecipientHrp = "age";
constexpr std::string_view kIdentityHrp = "age-secret-key-";
constexpr std::string_view kX25519Info = "age-encryption.org/v1/X25519";
constexpr size_t kTagSize = crypto_aead_chacha20poly1305_ietf_ABYTES;
constexpr size_t kSealedChunkSize = kChunkSize + kTagSize;
constexpr size_t kPayloadNonceSize = 16;
constexpr size_t kBodyColumns = 64;
constexpr size_t kMacSize = 32;

using Key32 = std::array<uint8_t, 32>;
using detail::hkdf_sha256;
using detail::header_mac;

// Wipes a key when it goes out of scope.
struct SecretKey {
  Key32 bytes{};
  ~SecretKey() { sodium_memzero(bytes.data(), bytes.size()); }
};

[[noreturn]] void fail(Errc code, const std::string &what) { throw AgeError(code, "age: " + what); }

void ensure_sodium() {
  static const bool ready = sodium_init() >= 0;
  if (!ready) fail(Errc::kCryptoFailure, "libsodium failed to initialise");
}

BytesView as_bytes(std::string_view s) { return {reinterpret_cast<const uint8_t *>(s.data()), s.size()}; }

// ---- base64 (standard alphabet, no padding, canonical only) ----

std::string base64_encode(BytesView in) {
  std::string out(sodium_base64_encoded_len(in.size(), sodium_base64_VARIANT_ORIGINAL_NO_PADDING), '\0');
  sodium_bin2base64(out.data(), out.size(), in.data(), in.size(), sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
  out.pop_back();  // the terminating NUL sodium writes
  return out;
}

// Empty when the text is not canonical unpadded base64 (sodium refuses bad characters, padding and
// non-zero leftover bits; the re-encoding check is a second guard against any other ambiguity).
std::optional<Bytes> base64_decode(std::string_view text) {
  Bytes out(text.size() * 3 / 4 + 1);
  size_t len = 0;
  if (sodium_base642bin(out.data(), out.size(), text.data(), text.size(), nullptr, &len, nullptr,
                        sodium_base64_VARIANT_ORIGINAL_NO_PADDING) != 0) {
    return std::nullopt;
  }
  out.resize(len);
  if (base64_encode(out) != text) return std::nullopt;
  return out;
}

// ---- X25519 stanzas ----

Key32 wrap_key(const Key32 &shared, const Key32 &share, const Key32 &recipient) {
  uint8_t salt[64];
  std::copy(share.begin(), share.end(), salt);
  std::copy(recipient.begin(), recipient.end(), salt + 32);
  return hkdf_sha256(shared, salt, kX25519Info);
}

const uint8_t kZeroNonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES] = {};

struct Stanza {
  std::vector<std::string_view> args;
  Bytes body;
};

// ---- the STREAM payload ----

void chunk_nonce(uint64_t counter, bool last, uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES]) {
  // 11-byte big-endian counter (the top three bytes stay zero for any size held in memory), then the flag.
  for (int i = 0; i < 11; ++i) nonce[i] = 0;
  for (int i = 0; i < 8; ++i) nonce[10 - i] = static_cast<uint8_t>(counter >> (8 * i));
  nonce[11] = last ? 1 : 0;
}

bool open_chunk(const Key32 &key, uint64_t counter, bool last, BytesView sealed, uint8_t *out) {
  uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
  chunk_nonce(counter, last, nonce);
  unsigned long long out_len = 0;
  return crypto_aead_chacha20poly1305_ietf_decrypt(out, &out_len, nullptr, sealed.data(), sealed.size(), nullptr, 0,
                                                   nonce, key.data()) == 0;
}

// ---- header reading ----

bool is_base64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

class HeaderReader {
 public:
  explicit HeaderReader(BytesView file) : file_(file) {}

  // The next line without its LF; refuses lines over the limit and a header without an end.
  std::string_view line() {
    size_t limit = std::min(file_.size(), std::min(pos_ + kMaxLineLength + 1, kMaxHeaderSize));
    for (size_t i = pos_; i < limit; ++i) {
      if (file_[i] == '\n') {
        std::string_view text(reinterpret_cast<const char *>(file_.data()) + pos_, i - pos_);
        pos_ = i + 1;
        return text;
      }
    }
    if (limit == file_.size()) fail(Errc::kMalformedHeader, "header ends before its MAC line");
    if (limit == kMaxHeaderSize) fail(Errc::kMalformedHeader, "header longer than 128 KiB");
    fail(Errc::kMalformedHeader, "header line longer than 4096 bytes");
  }
  size_t pos() const { return pos_; }

 private:
  BytesView file_;
  size_t pos_ = 0;
};

std::vector<std::string_view> split_args(std::string_view text) {
  std::vector<std::string_view> args;
  size_t start = 0;
  while (true) {
    size_t space = text.find(' ', start);
    std::string_view arg = text.substr(start, space == std::string_view::npos ? std::string_view::npos : space - start);
    if (arg.empty()) fail(Errc::kMalformedHeader, "empty stanza argument");
    for (char c : arg) {
      if (c < 0x21 || c > 0x7e) fail(Errc::kMalformedHeader, "stanza argument with a non-printable character");
    }
    args.push_back(arg);
    if (space == std::string_view::npos) return args;
    start = space + 1;
  }
}

Stanza read_stanza(HeaderReader &reader, std::string_view arg_line) {
  Stanza stanza;
  stanza.args = split_args(arg_line);
  std::string body_text;
  while (true) {
    std::string_view line = reader.line();
    if (line.size() > kBodyColumns) fail(Errc::kMalformedHeader, "stanza body line longer than 64 columns");
    for (char c : line) {
      if (!is_base64_char(c)) fail(Errc::kMalformedHeader, "stanza body is not unpadded base64");
    }
    body_text.append(line);
    if (line.size() < kBodyColumns) break;
  }
  std::optional<Bytes> body = base64_decode(body_text);
  if (!body) fail(Errc::kMalformedHeader, "stanza body is not canonical base64");
  stanza.body = std::move(*body);
  return stanza;
}

struct Header {
  std::vector<Stanza> stanzas;
  std::array<uint8_t, kMacSize> mac{};
  size_t mac_covered = 0;  // bytes from the start through "---"
  size_t size = 0;         // bytes through the MAC line's LF: the payload starts here
};

Header read_header(BytesView file) {
  std::string_view text(reinterpret_cast<const char *>(file.data()), file.size());
  if (text.substr(0, kVersionPrefix.size()) != kVersionPrefix) fail(Errc::kNotAgeFile, "not an age file");
  HeaderReader reader(file);
  std::string_view version = reader.line();
  if (version != kVersionLine) fail(Errc::kUnsupportedVersion, "unsupported age version (only v1 is read)");

  Header header;
  while (true) {
    size_t line_start = reader.pos();
    std::string_view line = reader.line();
    if (line.substr(0, 3) == "-> ") {
      if (header.stanzas.size() == kMaxStanzas) fail(Errc::kMalformedHeader, "more than 256 stanzas");
      header.stanzas.push_back(read_stanza(reader, line.substr(3)));
    } else if (line.substr(0, 3) == "---") {
      if (line.size() != 4 + 43 || line[3] != ' ') fail(Errc::kMalformedHeader, "malformed MAC line");
      std::optional<Bytes> mac = base64_decode(line.substr(4));
      if (!mac || mac->size() != kMacSize) fail(Errc::kMalformedHeader, "MAC is not canonical base64 of 32 bytes");
      std::copy(mac->begin(), mac->end(), header.mac.begin());
      header.mac_covered = line_start + 3;
      header.size = reader.pos();
      break;
    } else {
      fail(Errc::kMalformedHeader, "header line is neither a stanza nor the MAC");
    }
  }
  if (header.stanzas.empty()) fail(Errc::kMalformedHeader, "header without recipient stanzas");
  return header;
}

// The file key from the first X25519 stanza one of the identities opens. Every X25519 stanza is
// checked against the format first, whether or not it turns out to be ours.
std::optional<SecretKey> unwrap_file_key(const Header &header, std::span<const X25519Identity> identities) {
  struct X25519Stanza {
    Key32 share;
    const Bytes *body;
  };
  std::vector<X25519Stanza> ours;
  bool has_scrypt = false;
  for (const Stanza &s : header.stanzas) {
    if (s.args[0] == "scrypt") has_scrypt = true;
    if (s.args[0] != "X25519") continue;
    if (s.args.size() != 2) fail(Errc::kMalformedHeader, "X25519 stanza must have exactly one share argument");
    std::optional<Bytes> share = base64_decode(s.args[1]);
    if (!share || share->size() != 32) fail(Errc::kMalformedHeader, "X25519 share is not canonical base64 of 32 bytes");
    if (s.body.size() != kFileKeySize + kTagSize) fail(Errc::kMalformedHeader, "X25519 stanza body is not 32 bytes");
    X25519Stanza x{};
    std::copy(share->begin(), share->end(), x.share.begin());
    x.body = &s.body;
    ours.push_back(x);
  }
  if (has_scrypt && header.stanzas.size() > 1) fail(Errc::kMalformedHeader, "an scrypt stanza must be alone in the header");

  for (const X25519Identity &identity : identities) {
    for (const X25519Stanza &x : ours) {
      SecretKey shared;
      if (crypto_scalarmult(shared.bytes.data(), identity.secret().data(), x.share.data()) != 0 ||
          sodium_is_zero(shared.bytes.data(), shared.bytes.size())) {
        fail(Errc::kMalformedHeader, "X25519 share is a low-order point (all-zero shared secret)");
      }
      SecretKey wrap;
      wrap.bytes = wrap_key(shared.bytes, x.share, identity.recipient().bytes());
      SecretKey file_key;
      unsigned long long len = 0;
      if (crypto_aead_chacha20poly1305_ietf_decrypt(file_key.bytes.data(), &len, nullptr, x.body->data(),
                                                    x.body->size(), nullptr, 0, kZeroNonce, wrap.bytes.data()) == 0) {
        return file_key;  // the first kFileKeySize bytes hold the key
      }
    }
  }
  return std::nullopt;
}

Bytes decrypt_payload(BytesView payload, BytesView file_key) {
  if (payload.size() < kPayloadNonceSize) fail(Errc::kPayloadTruncated, "payload truncated (no nonce)");
  SecretKey key;
  key.bytes = hkdf_sha256(file_key, payload.first(kPayloadNonceSize), "payload");
  BytesView chunks = payload.subspan(kPayloadNonceSize);
  if (chunks.empty()) fail(Errc::kPayloadTruncated, "payload truncated (no final chunk)");

  Bytes plaintext;
  plaintext.reserve(chunks.size() - chunks.size() / kSealedChunkSize * kTagSize);
  uint64_t counter = 0;
  size_t off = 0;
  while (true) {
    size_t remaining = chunks.size() - off;
    bool last = remaining <= kSealedChunkSize;
    BytesView sealed = chunks.subspan(off, last ? remaining : kSealedChunkSize);
    if (sealed.size() < kTagSize) fail(Errc::kPayloadTruncated, "payload truncated (partial chunk)");
    if (last && sealed.size() == kTagSize && counter > 0) {
      fail(Errc::kEmptyLastChunk, "payload ends with an empty chunk after a full one");
    }
    size_t at = plaintext.size();
    plaintext.resize(at + sealed.size() - kTagSize);
    if (!open_chunk(key.bytes, counter, last, sealed, plaintext.data() + at)) {
      sodium_memzero(plaintext.data(), plaintext.size());
      // Try the other flag only to name the error: a full chunk that is in fact the final one means
      // data follows the end; a last chunk that opens as a middle one means the file was cut there.
      Bytes scratch(sealed.size() - kTagSize);
      bool opens_as_final = !last && open_chunk(key.bytes, counter, true, sealed, scratch.data());
      bool opens_as_middle =
          last && sealed.size() == kSealedChunkSize && open_chunk(key.bytes, counter, false, sealed, scratch.data());
      sodium_memzero(scratch.data(), scratch.size());
      if (opens_as_final) fail(Errc::kTrailingData, "trailing data after the final payload chunk");
      if (opens_as_middle) fail(Errc::kPayloadTruncated, "payload truncated (ends without a final chunk)");
      fail(Errc::kPayloadAuthFailed, "payload authentication failed (tampered or truncated)");
    }
    if (last) return plaintext;
    off += kSealedChunkSize;
    ++counter;
  }
}

}  // namespace

const char *errc_name(Errc code) {
  switch (code) {
    case Errc::kNotAgeFile: return "not_age_file";
    case Errc::kMalformedArmor: return "malformed_armor";
    case Errc::kUnsupportedVersion: return "unsupported_version";
    case Errc::kMalformedHeader: return "malformed_header";
    case Errc::kNoIdentityMatches: return "no_identity_matches";
    case Errc::kHeaderMacMismatch: return "header_mac_mismatch";
    case Errc::kPayloadTruncated: return "payload_truncated";
    case Errc::kPayloadAuthFailed: return "payload_auth_failed";
    case Errc::kTrailingData: return "trailing_data";
    case Errc::kEmptyLastChunk: return "empty_last_chunk";
    case Errc::kBadKey: return "bad_key";
    case Errc::kBadArgument: return "bad_argument";
    case Errc::kCryptoFailure: return "crypto_failure";
  }
  return "unknown";
}

// ---- keys ----

X25519Recipient X25519Recipient::parse(std::string_view text) {
  bech32::Decoded d;
  try {
    d = bech32::decode(text, bech32::kNoLengthLimit);
  } catch (const bech32::Bech32Error &e) {
    fail(Errc::kBadKey, std::string("bad recipient: ") + e.what());
  }
  if (d.hrp != kRecipientHrp || d.letter_case != bech32::Case::kLower) {
    fail(Errc::kBadKey, "bad recipient: not an X25519 recipient (age1..., lowercase)");
  }
  Bytes key;
  try {
    key = bech32::values_to_bytes(d.values);
  } catch (const bech32::Bech32Error &e) {
    fail(Errc::kBadKey, std::string("bad recipient: ") + e.what());
  }
  if (key.size() != 32) fail(Errc::kBadKey, "bad recipient: not 32 bytes");
  Key32 bytes{};
  std::copy(key.begin(), key.end(), bytes.begin());
  return from_bytes(bytes);
}

X25519Recipient X25519Recipient::from_bytes(const std::array<uint8_t, 32> &public_key) {
  X25519Recipient r;
  r.public_key_ = public_key;
  return r;
}

std::string X25519Recipient::to_string() const { return bech32::encode_bytes(kRecipientHrp, public_key_); }

X25519Identity X25519Identity::generate() {
  ensure_sodium();
  Key32 secret{};
  randombytes_buf(secret.data(), secret.size());
  X25519Identity id = from_bytes(secret);
  sodium_memzero(secret.data(), secret.size());
  return id;
}

X25519Identity X25519Identity::parse(std::string_view text) {
  bech32::Decoded d;
  try {
    d = bech32::decode(text, bech32::kNoLengthLimit);
  } catch (const bech32::Bech32Error &e) {
    fail(Errc::kBadKey, std::string("bad identity: ") + e.what());
  }
  if (d.hrp != kIdentityHrp || d.letter_case != bech32::Case::kUpper) {
    fail(Errc::kBadKey, "bad identity: not an X25519 identity (AGE-SECRET-KEY-1..., uppercase)");
  }
  Bytes key;
  try {
    key = bech32::values_to_bytes(d.values);
  } catch (const bech32::Bech32Error &e) {
    fail(Errc::kBadKey, std::string("bad identity: ") + e.what());
  }
  sodium_memzero(d.values.data(), d.values.size());
  if (key.size() != 32) {
    sodium_memzero(key.data(), key.size());
    fail(Errc::kBadKey, "bad identity: not 32 bytes");
  }
  Key32 secret{};
  std::copy(key.begin(), key.end(), secret.begin());
  sodium_memzero(key.data(), key.size());
  X25519Identity id = from_bytes(secret);
  sodium_memzero(secret.data(), secret.size());
  return id;
}

X25519Identity X25519Identity::from_bytes(const std::array<uint8_t, 32> &secret) {
  ensure_sodium();
  X25519Identity id;
  id.secret_ = secret;
  Key32 pub{};
  if (crypto_scalarmult_base(pub.data(), id.secret_.data()) != 0) fail(Errc::kBadKey, "bad identity");
  id.recipient_ = X25519Recipient::from_bytes(pub);
  return id;
}

X25519Identity::~X25519Identity() { sodium_memzero(secret_.data(), secret_.size()); }

std::string X25519Identity::to_string() const {
  Bytes values = bech32::bytes_to_values(secret_);
  std::string out = bech32::encode(kIdentityHrp, values, bech32::Case::kUpper);
  sodium_memzero(values.data(), values.size());
  return out;
}

// ---- encrypt / decrypt ----

Bytes encrypt(BytesView plaintext, std::span<const X25519Recipient> recipients) {
  ensure_sodium();
  SecretKey file_key;
  randombytes_buf(file_key.bytes.data(), kFileKeySize);
  BytesView file_key_view(file_key.bytes.data(), kFileKeySize);

  std::string header = detail::write_header(file_key_view, recipients);

  size_t chunk_count = plaintext.empty() ? 1 : (plaintext.size() + kChunkSize - 1) / kChunkSize;
  Bytes out;
  out.reserve(header.size() + kPayloadNonceSize + plaintext.size() + chunk_count * kTagSize);
  out.insert(out.end(), header.begin(), header.end());
  uint8_t nonce[kPayloadNonceSize];
  randombytes_buf(nonce, sizeof nonce);
  out.insert(out.end(), nonce, nonce + sizeof nonce);
  SecretKey payload_key;
  payload_key.bytes = hkdf_sha256(file_key_view, nonce, "payload");
  for (size_t i = 0; i < chunk_count; ++i) {
    BytesView chunk = plaintext.subspan(i * kChunkSize, std::min(kChunkSize, plaintext.size() - i * kChunkSize));
    uint8_t chunk_nonce_bytes[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
    chunk_nonce(i, i + 1 == chunk_count, chunk_nonce_bytes);
    size_t at = out.size();
    out.resize(at + chunk.size() + kTagSize);
    crypto_aead_chacha20poly1305_ietf_encrypt(out.data() + at, nullptr, chunk.data(), chunk.size(), nullptr, 0,
                                              nullptr, chunk_nonce_bytes, payload_key.bytes.data());
  }
  return out;
}

Bytes decrypt(BytesView file, std::span<const X25519Identity> identities) {
  ensure_sodium();
  Bytes dearmored;
  if (is_armored(file)) {
    dearmored = dearmor(file);
    file = dearmored;
  }
  Header header = read_header(file);
  std::optional<SecretKey> file_key = unwrap_file_key(header, identities);
  if (!file_key) fail(Errc::kNoIdentityMatches, "no identity matches any recipient stanza");
  BytesView file_key_view(file_key->bytes.data(), kFileKeySize);
  std::array<uint8_t, kMacSize> mac = header_mac(file_key_view, file.first(header.mac_covered));
  if (CRYPTO_memcmp(mac.data(), header.mac.data(), kMacSize) != 0) fail(Errc::kHeaderMacMismatch, "header MAC mismatch");
  return decrypt_payload(file.subspan(header.size), file_key_view);
}

// ---- ASCII armor ----

bool is_armored(BytesView file) {
  std::string_view text(reinterpret_cast<const char *>(file.data()), std::min(file.size(), kMaxLineLength));
  size_t first = text.find_first_not_of(kWhitespace);
  return first != std::string_view::npos && text.substr(first, kArmorBegin.size()) == kArmorBegin;
}

std::string armor(BytesView file) {
  ensure_sodium();
  std::string data(sodium_base64_encoded_len(file.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(data.data(), data.size(), file.data(), file.size(), sodium_base64_VARIANT_ORIGINAL);
  data.pop_back();
  std::string out(kArmorBegin);
  out.push_back('\n');
  for (size_t i = 0; i < data.size(); i += kBodyColumns) {
    out.append(data, i, kBodyColumns);
    out.push_back('\n');
  }
  out.append(kArmorEnd);
  out.push_back('\n');
  return out;
}

Bytes dearmor(BytesView armored) {
  ensure_sodium();
  std::string_view text(reinterpret_cast<const char *>(armored.data()), armored.size());
  size_t first = text.find_first_not_of(kWhitespace);
  size_t last = text.find_last_not_of(kWhitespace);
  if (first == std::string_view::npos) fail(Errc::kMalformedArmor, "malformed armor: empty");
  text = text.substr(first, last - first + 1);
  if (text.substr(0, kArmorBegin.size()) != kArmorBegin) fail(Errc::kMalformedArmor, "malformed armor: no BEGIN line");
  text.remove_prefix(kArmorBegin.size());
  // The line end after BEGIN sets the one every line uses.
  std::string_view eol = text.substr(0, 2) == "\r\n" ? "\r\n" : "\n";
  if (text.substr(0, eol.size()) != eol) fail(Errc::kMalformedArmor, "malformed armor: BEGIN line");
  text.remove_prefix(eol.size());

  std::string data;
  bool short_line_seen = false;
  while (true) {
    size_t end = text.find(eol);
    std::string_view line = text.substr(0, end);
    if (line == kArmorEnd) {
      if (end != std::string_view::npos) fail(Errc::kMalformedArmor, "malformed armor: data after the END line");
      break;
    }
    if (end == std::string_view::npos) fail(Errc::kMalformedArmor, "malformed armor: no END line");
    if (short_line_seen) fail(Errc::kMalformedArmor, "malformed armor: a short line before the last");
    if (line.empty() || line.size() > kBodyColumns) fail(Errc::kMalformedArmor, "malformed armor: line length");
    short_line_seen = line.size() < kBodyColumns;
    data.append(line);
    text.remove_prefix(end + eol.size());
  }
  if (data.empty()) fail(Errc::kMalformedArmor, "malformed armor: no data");
  Bytes out(data.size() / 4 * 3 + 3);
  size_t len = 0;
  if (sodium_base642bin(out.data(), out.size(), data.data(), data.size(), nullptr, &len, nullptr,
                        sodium_base64_VARIANT_ORIGINAL) != 0) {
    fail(Errc::kMalformedArmor, "malformed armor: not canonical padded base64");
  }
  out.resize(len);
  std::string again(sodium_base64_encoded_len(out.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(again.data(), again.size(), out.data(), out.size(), sodium_base64_VARIANT_ORIGINAL);
  again.pop_back();
  if (again != data) fail(Errc::kMalformedArmor, "malformed armor: not canonical padded base64");
  return out;
}

namespace detail {
std::array<uint8_t, 32> hkdf_sha256(BytesView ikm, BytesView salt, std::string_view info) {
  // Fetched once; owned, so the plugin's unload frees it (a bare static pointer leaks once the
  // plugin is unloaded, and LeakSanitizer says so).
  static const std::unique_ptr<EVP_KDF, decltype(&EVP_KDF_free)> kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr),
                                                                     EVP_KDF_free);
  if (!kdf) fail(Errc::kCryptoFailure, "OpenSSL has no HKDF");
  std::unique_ptr<EVP_KDF_CTX, decltype(&EVP_KDF_CTX_free)> ctx(EVP_KDF_CTX_new(kdf.get()), EVP_KDF_CTX_free);
  if (!ctx) fail(Errc::kCryptoFailure, "HKDF context allocation failed");
  OSSL_PARAM params[5];
  size_t n = 0;
  params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char *>("SHA256"), 0);
  params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t *>(ikm.data()), ikm.size());
  // An empty salt is left unset: HKDF-Extract then uses the hash length of zeros, as RFC 5869 says.
  if (!salt.empty()) {
    params[n++] =
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<uint8_t *>(salt.data()), salt.size());
  }
  params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char *>(info.data()), info.size());
  params[n] = OSSL_PARAM_construct_end();
  std::array<uint8_t, 32> out{};
  if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) != 1) fail(Errc::kCryptoFailure, "HKDF failed");
  return out;
}

std::array<uint8_t, 32> header_mac(BytesView file_key, BytesView header_through_dashes) {
  SecretKey mac_key;
  mac_key.bytes = hkdf_sha256(file_key, {}, "header");
  std::array<uint8_t, 32> mac{};
  size_t mac_len = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, mac_key.bytes.data(), mac_key.bytes.size(),
                header_through_dashes.data(), header_through_dashes.size(), mac.data(), mac.size(),
                &mac_len) == nullptr ||
      mac_len != mac.size()) {
    fail(Errc::kCryptoFailure, "HMAC failed");
  }
  return mac;
}

std::string write_header(BytesView file_key, std::span<const X25519Recipient> recipients) {
  ensure_sodium();
  if (file_key.size() != kFileKeySize) fail(Errc::kBadArgument, "file key must be 16 bytes");
  if (recipients.empty()) fail(Errc::kBadArgument, "encrypt needs at least one recipient");
  if (recipients.size() > kMaxStanzas) fail(Errc::kBadArgument, "more than 256 recipients");
  std::string header(kVersionLine);
  header.push_back('\n');
  for (const X25519Recipient &recipient : recipients) {
    SecretKey ephemeral, shared, wrap;
    randombytes_buf(ephemeral.bytes.data(), ephemeral.bytes.size());
    Key32 share{};
    crypto_scalarmult_base(share.data(), ephemeral.bytes.data());
    if (crypto_scalarmult(shared.bytes.data(), ephemeral.bytes.data(), recipient.bytes().data()) != 0) {
      fail(Errc::kBadKey, "recipient " + recipient.to_string() + " is a low-order point");
    }
    wrap.bytes = wrap_key(shared.bytes, share, recipient.bytes());
    uint8_t body[kFileKeySize + kTagSize];
    crypto_aead_chacha20poly1305_ietf_encrypt(body, nullptr, file_key.data(), kFileKeySize, nullptr, 0, nullptr,
                                              kZeroNonce, wrap.bytes.data());
    header += "-> X25519 " + base64_encode(share) + "\n";
    // The body in 64-column lines; it ends with a shorter (possibly empty) line.
    std::string text = base64_encode(body);
    for (size_t i = 0;; i += kBodyColumns) {
      std::string_view line = std::string_view(text).substr(std::min(i, text.size()), kBodyColumns);
      header.append(line);
      header.push_back('\n');
      if (line.size() < kBodyColumns) break;
    }
  }
  header += "---";
  std::array<uint8_t, kMacSize> mac = header_mac(file_key, as_bytes(header));
  header += " " + base64_encode(mac) + "\n";
  return header;
}

}  // namespace detail

}  // namespace chorus::dht::age
