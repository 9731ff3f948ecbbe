// Fuzzes age decryption with a fixed identity. Any input must either be refused with AgeError or
// decrypt to a plaintext that is consistent with the file's layout; a plaintext that decrypts must
// also survive encrypt -> decrypt. The same bytes are tried as key strings (bech32).
//
// The seed corpus (corpus/dht_age/) holds files encrypted to this fuzzer's identity, so mutations
// start from valid headers and payloads.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "age/age.hpp"
#include "age/bech32.hpp"

namespace {

using chorus::dht::Bytes;
using chorus::dht::BytesView;
namespace age = chorus::dht::age;

// The fixed identity: 32 bytes 0x01..0x20, that is
// AGE-SECRET-KEY-1QYPQXPQ9QCRSSZG2PVXQ6RS0ZQG3YYC5Z5TPWXQERGD3C8G7RUSQGPQYEE.
const std::vector<age::X25519Identity> &identities() {
  static const std::vector<age::X25519Identity> ids = [] {
    std::array<uint8_t, 32> secret{};
    for (size_t i = 0; i < secret.size(); ++i) secret[i] = static_cast<uint8_t>(i + 1);
    return std::vector<age::X25519Identity>{age::X25519Identity::from_bytes(secret)};
  }();
  return ids;
}

void check(bool ok) {
  if (!ok) std::abort();
}

void fuzz_keys(std::string_view text) {
  try {
    age::X25519Identity id = age::X25519Identity::parse(text);
    check(age::X25519Identity::parse(id.to_string()).secret() == id.secret());
  } catch (const age::AgeError &) {
  }
  try {
    age::X25519Recipient r = age::X25519Recipient::parse(text);
    check(age::X25519Recipient::parse(r.to_string()) == r);
  } catch (const age::AgeError &) {
  }
  try {
    chorus::dht::bech32::Decoded d = chorus::dht::bech32::decode(text, chorus::dht::bech32::kNoLengthLimit);
    check(chorus::dht::bech32::decode(chorus::dht::bech32::encode(d.hrp, d.values, d.letter_case),
                                      chorus::dht::bech32::kNoLengthLimit)
              .values == d.values);
  } catch (const chorus::dht::bech32::Bech32Error &) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  BytesView file(data, size);
  if (size <= 4096) fuzz_keys(std::string_view(reinterpret_cast<const char *>(data), size));

  Bytes plaintext;
  try {
    plaintext = age::decrypt(file, identities());
  } catch (const age::AgeError &) {
    return 0;  // refused: the only acceptable failure
  }
  // Accepted: the payload must be exactly the plaintext plus one tag per 64 KiB chunk (at least one)
  // after the header and the 16-byte nonce, so no byte of the input went unauthenticated. An
  // armored input is checked in its binary form.
  Bytes binary = age::is_armored(file) ? age::dearmor(file) : Bytes(file.begin(), file.end());
  std::string_view text(reinterpret_cast<const char *>(binary.data()), binary.size());
  size_t mac_line = text.find("\n--- ");
  check(mac_line != std::string_view::npos);
  size_t header_end = text.find('\n', mac_line + 1) + 1;
  size_t chunks = plaintext.empty() ? 1 : (plaintext.size() + age::kChunkSize - 1) / age::kChunkSize;
  check(binary.size() == header_end + 16 + plaintext.size() + 16 * chunks);

  std::vector<age::X25519Recipient> recipients = {identities()[0].recipient()};
  check(age::decrypt(age::encrypt(plaintext, recipients), identities()) == plaintext);
  return 0;
}
