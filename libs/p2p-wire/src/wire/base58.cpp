#include "wire/base58.hpp"

#include <array>

namespace chorus::p2p {
namespace {

constexpr char kAlphabet[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

constexpr std::array<int8_t, 256> make_index() {
  std::array<int8_t, 256> t{};
  for (auto &v : t) v = -1;
  for (int i = 0; i < 58; ++i) t[static_cast<uint8_t>(kAlphabet[i])] = static_cast<int8_t>(i);
  return t;
}
constexpr std::array<int8_t, 256> kIndex = make_index();

}  // namespace

std::string base58_encode(BytesView in) {
  if (in.size() > kMaxBase58Input) return {};
  size_t zeros = 0;
  while (zeros < in.size() && in[zeros] == 0) ++zeros;
  // Big-number conversion base 256 -> base 58, digits stored least significant first.
  // log(256)/log(58) < 1.37, so size*138/100+1 digits suffice.
  std::vector<uint8_t> digits;
  digits.reserve((in.size() - zeros) * 138 / 100 + 1);
  for (size_t i = zeros; i < in.size(); ++i) {
    uint32_t carry = in[i];
    for (auto &d : digits) {
      carry += static_cast<uint32_t>(d) << 8;
      d = static_cast<uint8_t>(carry % 58);
      carry /= 58;
    }
    while (carry > 0) {
      digits.push_back(static_cast<uint8_t>(carry % 58));
      carry /= 58;
    }
  }
  std::string out(zeros, '1');
  for (size_t i = digits.size(); i-- > 0;) out.push_back(kAlphabet[digits[i]]);
  return out;
}

std::optional<Bytes> base58_decode(std::string_view in) {
  if (in.size() > kMaxBase58Input) return std::nullopt;
  size_t ones = 0;
  while (ones < in.size() && in[ones] == '1') ++ones;
  std::vector<uint8_t> bytes;  // base 256, least significant first
  bytes.reserve((in.size() - ones) * 733 / 1000 + 1);
  for (size_t i = ones; i < in.size(); ++i) {
    int v = kIndex[static_cast<uint8_t>(in[i])];
    if (v < 0) return std::nullopt;
    uint32_t carry = static_cast<uint32_t>(v);
    for (auto &b : bytes) {
      carry += static_cast<uint32_t>(b) * 58;
      b = static_cast<uint8_t>(carry & 0xff);
      carry >>= 8;
    }
    while (carry > 0) {
      bytes.push_back(static_cast<uint8_t>(carry & 0xff));
      carry >>= 8;
    }
  }
  Bytes out(ones, 0);
  out.insert(out.end(), bytes.rbegin(), bytes.rend());
  return out;
}

}  // namespace chorus::p2p
