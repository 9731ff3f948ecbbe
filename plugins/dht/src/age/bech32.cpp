#include "age/bech32.hpp"

#include <array>

namespace chorus::dht::bech32 {
namespace {

constexpr std::string_view kAlphabet = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
constexpr size_t kChecksumLength = 6;
constexpr size_t kMaxHrpLength = 83;

// The BCH code's generator, from BIP 173.
uint32_t polymod(const Bytes &values) {
  constexpr std::array<uint32_t, 5> kGenerator = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3};
  uint32_t chk = 1;
  for (uint8_t v : values) {
    uint32_t top = chk >> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (size_t i = 0; i < kGenerator.size(); ++i) {
      if ((top >> i) & 1) chk ^= kGenerator[i];
    }
  }
  return chk;
}

Bytes expand_hrp(std::string_view hrp) {
  Bytes out;
  out.reserve(hrp.size() * 2 + 1);
  for (char c : hrp) out.push_back(static_cast<uint8_t>(c) >> 5);
  out.push_back(0);
  for (char c : hrp) out.push_back(static_cast<uint8_t>(c) & 31);
  return out;
}

int alphabet_index(char c) {
  size_t at = kAlphabet.find(c);
  return at == std::string_view::npos ? -1 : static_cast<int>(at);
}

char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
char to_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

// Regroups from_bits-wide groups into to_bits-wide ones (BIP 173's convertbits).
Bytes convert_bits(BytesView in, unsigned from_bits, unsigned to_bits, bool pad) {
  Bytes out;
  out.reserve(in.size() * from_bits / to_bits + 1);
  uint32_t acc = 0;
  unsigned bits = 0;
  const uint32_t max_value = (1u << to_bits) - 1;
  for (uint8_t v : in) {
    if ((v >> from_bits) != 0) throw Bech32Error("bech32: value out of range");
    acc = (acc << from_bits) | v;
    bits += from_bits;
    while (bits >= to_bits) {
      bits -= to_bits;
      out.push_back(static_cast<uint8_t>((acc >> bits) & max_value));
    }
  }
  if (pad) {
    if (bits > 0) out.push_back(static_cast<uint8_t>((acc << (to_bits - bits)) & max_value));
  } else if (bits >= from_bits) {
    throw Bech32Error("bech32: too much padding");
  } else if (((acc << (to_bits - bits)) & max_value) != 0) {
    throw Bech32Error("bech32: non-zero padding bits");
  }
  return out;
}

}  // namespace

std::string encode(std::string_view hrp, BytesView values, Case letter_case) {
  if (hrp.empty() || hrp.size() > kMaxHrpLength) throw Bech32Error("bech32: HRP must be 1 to 83 characters");
  for (char c : hrp) {
    if (c < 0x21 || c > 0x7e) throw Bech32Error("bech32: HRP character out of range");
    if (c >= 'A' && c <= 'Z') throw Bech32Error("bech32: HRP must be given in lowercase");
  }
  Bytes checked = expand_hrp(hrp);
  checked.insert(checked.end(), values.begin(), values.end());
  checked.insert(checked.end(), kChecksumLength, 0);
  uint32_t mod = polymod(checked) ^ 1;

  std::string out;
  out.reserve(hrp.size() + 1 + values.size() + kChecksumLength);
  out.append(hrp);
  out.push_back('1');
  for (uint8_t v : values) {
    if (v >= 32) throw Bech32Error("bech32: value out of range");
    out.push_back(kAlphabet[v]);
  }
  for (size_t i = 0; i < kChecksumLength; ++i) out.push_back(kAlphabet[(mod >> (5 * (5 - i))) & 31]);
  if (letter_case == Case::kUpper) {
    for (char &c : out) c = to_upper(c);
  }
  return out;
}

Decoded decode(std::string_view text, size_t max_length) {
  if (text.size() > max_length) throw Bech32Error("bech32: string too long");
  bool has_lower = false, has_upper = false;
  for (char c : text) {
    if (c < 0x21 || c > 0x7e) throw Bech32Error("bech32: character out of range");
    has_lower |= (c >= 'a' && c <= 'z');
    has_upper |= (c >= 'A' && c <= 'Z');
  }
  if (has_lower && has_upper) throw Bech32Error("bech32: mixed case");
  size_t sep = text.rfind('1');
  if (sep == std::string_view::npos) throw Bech32Error("bech32: no separator");
  if (sep == 0) throw Bech32Error("bech32: empty HRP");
  if (sep > kMaxHrpLength) throw Bech32Error("bech32: HRP too long");
  if (text.size() - sep - 1 < kChecksumLength) throw Bech32Error("bech32: checksum too short");

  Decoded out;
  out.letter_case = has_upper ? Case::kUpper : Case::kLower;
  out.hrp.reserve(sep);
  for (char c : text.substr(0, sep)) out.hrp.push_back(to_lower(c));
  Bytes data;
  data.reserve(text.size() - sep - 1);
  for (char c : text.substr(sep + 1)) {
    int v = alphabet_index(to_lower(c));
    if (v < 0) throw Bech32Error("bech32: invalid data character");
    data.push_back(static_cast<uint8_t>(v));
  }
  Bytes checked = expand_hrp(out.hrp);
  checked.insert(checked.end(), data.begin(), data.end());
  if (polymod(checked) != 1) throw Bech32Error("bech32: bad checksum");
  data.resize(data.size() - kChecksumLength);
  out.values = std::move(data);
  return out;
}

Bytes bytes_to_values(BytesView bytes) { return convert_bits(bytes, 8, 5, true); }
Bytes values_to_bytes(BytesView values) { return convert_bits(values, 5, 8, false); }

std::string encode_bytes(std::string_view hrp, BytesView bytes, Case letter_case) {
  return encode(hrp, bytes_to_values(bytes), letter_case);
}

Bytes decode_bytes(std::string_view text, std::string_view expected_hrp, size_t max_length) {
  Decoded d = decode(text, max_length);
  if (d.hrp != expected_hrp) throw Bech32Error("bech32: expected HRP '" + std::string(expected_hrp) + "'");
  return values_to_bytes(d.values);
}

}  // namespace chorus::dht::bech32
