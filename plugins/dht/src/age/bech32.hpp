// Bech32 (BIP 173; not the bech32m variant of BIP 350): a human-readable part (HRP), the separator
// '1', then 5-bit groups written in a 32-character alphabet and ended by a 6-character BCH checksum.
// age writes its recipients ("age1...") and identities ("AGE-SECRET-KEY-1...") this way, without
// BIP 173's 90-character limit on the whole string, so the limit is a parameter here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>

#include "kad/key.hpp"

namespace chorus::dht::bech32 {

class Bech32Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr size_t kBip173MaxLength = 90;
inline constexpr size_t kNoLengthLimit = std::numeric_limits<size_t>::max();

enum class Case { kLower, kUpper };

struct Decoded {
  std::string hrp;  // always lowercase (the checksum is defined over the lowercase form)
  Bytes values;     // 5-bit groups (each < 32), checksum removed
  Case letter_case = Case::kLower;
};

// hrp: 1..83 characters in 0x21..0x7e without uppercase letters; values: each < 32. Throws Bech32Error.
std::string encode(std::string_view hrp, BytesView values, Case letter_case = Case::kLower);

// Checks the characters, the case (all upper or all lower), the separator, the checksum and the
// length; throws Bech32Error saying what is wrong.
Decoded decode(std::string_view text, size_t max_length = kBip173MaxLength);

// Regroups bits: 8 -> 5 with padding (encoding bytes), 5 -> 8 without (decoding; leftover bits must
// be fewer than 5 and zero). Throws Bech32Error on invalid input.
Bytes bytes_to_values(BytesView bytes);
Bytes values_to_bytes(BytesView values);

// The two together: bytes in, bech32 string out, and back (checking the HRP).
std::string encode_bytes(std::string_view hrp, BytesView bytes, Case letter_case = Case::kLower);
Bytes decode_bytes(std::string_view text, std::string_view expected_hrp, size_t max_length = kNoLengthLimit);

}  // namespace chorus::dht::bech32
