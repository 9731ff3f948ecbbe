// RFC 4648 base32, lower-case alphabet, no padding: the multibase 'b' encoding used by CIDv1 peer ids.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "wire/bytes.hpp"

namespace chorus::p2p {

std::string base32_encode(BytesView in);
// Accepts lower-case only (multibase 'b'); nullopt on any other character, on '=' padding, or on a
// length that no encoding produces (leftover bits must be zero, as a canonical encoder writes them).
std::optional<Bytes> base32_decode(std::string_view in);

}  // namespace chorus::p2p
