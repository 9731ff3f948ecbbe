// Base58 (bitcoin alphabet), used for the legacy text form of peer ids.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "wire/bytes.hpp"

namespace chorus::p2p {

// Base58 conversion is quadratic in the input length; inputs beyond this are refused (peer ids are ~50 chars).
constexpr size_t kMaxBase58Input = 1024;

// Returns an empty string if in is longer than kMaxBase58Input bytes.
std::string base58_encode(BytesView in);
// nullopt on a character outside the alphabet or an input longer than kMaxBase58Input characters.
std::optional<Bytes> base58_decode(std::string_view in);

}  // namespace chorus::p2p
