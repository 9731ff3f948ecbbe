#include "wire/peer_id.hpp"

#include <sodium.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "wire/base32.hpp"
#include "wire/base58.hpp"
#include "wire/protobuf.hpp"
#include "wire/varint.hpp"

namespace chorus::p2p {
namespace {

constexpr uint64_t kMultihashIdentity = 0x00;
constexpr uint64_t kMultihashSha256 = 0x12;
constexpr uint64_t kCodecLibp2pKey = 0x72;
constexpr size_t kMaxIdentityDigest = 42;
constexpr size_t kMaxPeerIdText = 256;  // real ids are ~52 (base58) or ~62 (CID) characters

bool set_why(std::string *why, std::string msg) {
  if (why != nullptr) *why = std::move(msg);
  return false;
}

}  // namespace

Bytes encode_ed25519_public_key(const uint8_t pk[32]) {
  Bytes out;
  out.reserve(36);
  ProtoWriter w(out);
  w.varint(1, kKeyEd25519);
  w.bytes(2, BytesView(pk, 32));
  return out;
}

bool decode_public_key(BytesView in, uint32_t &key_type, Bytes &data, std::string *why) {
  ProtoReader r(in);
  bool have_type = false, have_data = false;
  uint64_t type = 0;
  BytesView value;
  while (r.next()) {
    if (r.field() == 1 && r.wire_type() == kWireVarint && !have_type && !have_data) {
      type = r.varint();
      have_type = true;
    } else if (r.field() == 2 && r.wire_type() == kWireBytes && have_type && !have_data) {
      value = r.bytes();
      have_data = true;
    } else {
      return set_why(why, "key protobuf: unexpected field " + std::to_string(r.field()) +
                              " (expected Type=1 then Data=2, once each)");
    }
  }
  if (!r.ok()) return set_why(why, std::string("key protobuf: ") + r.error());
  if (!have_type || !have_data) return set_why(why, "key protobuf: missing Type or Data");
  if (type > kKeyEcdsa) return set_why(why, "key protobuf: unknown key type " + std::to_string(type));
  // Reject padded varints and the like: ids and signatures are computed over the canonical bytes, so two
  // encodings of one key must not both be accepted.
  Bytes canonical;
  ProtoWriter w(canonical);
  w.varint(1, type);
  w.bytes(2, value);
  if (canonical.size() != in.size() || !std::equal(canonical.begin(), canonical.end(), in.begin()))
    return set_why(why, "key protobuf: non-canonical encoding");
  key_type = static_cast<uint32_t>(type);
  data.assign(value.begin(), value.end());
  return true;
}

std::optional<PeerId> PeerId::from_bytes(BytesView mh, std::string *why) {
  uint64_t code = 0, len = 0;
  size_t used = 0, used2 = 0;
  if (read_uvarint(mh, code, used) != VarintStatus::ok ||
      read_uvarint(mh.subspan(used), len, used2) != VarintStatus::ok) {
    set_why(why, "peer id: malformed multihash header");
    return std::nullopt;
  }
  size_t header = used + used2;
  if (len != mh.size() - header) {
    set_why(why, "peer id: multihash length " + std::to_string(len) + " does not match the " +
                     std::to_string(mh.size() - header) + " digest bytes present");
    return std::nullopt;
  }
  if (code == kMultihashIdentity) {
    if (len > kMaxIdentityDigest) {
      set_why(why, "peer id: identity multihash longer than 42 bytes");
      return std::nullopt;
    }
  } else if (code == kMultihashSha256) {
    if (len != 32) {
      set_why(why, "peer id: sha2-256 multihash must hold 32 bytes");
      return std::nullopt;
    }
  } else {
    char code_hex[24];
    std::snprintf(code_hex, sizeof code_hex, "0x%llx", static_cast<unsigned long long>(code));
    set_why(why, std::string("peer id: unsupported multihash code ") + code_hex +
                     " (only identity and sha2-256 are allowed)");
    return std::nullopt;
  }
  return PeerId(Bytes(mh.begin(), mh.end()));
}

std::optional<PeerId> PeerId::parse(std::string_view text, std::string *why) {
  if (text.empty()) {
    set_why(why, "peer id: empty");
    return std::nullopt;
  }
  if (text.size() > kMaxPeerIdText) {
    set_why(why, "peer id: text longer than 256 characters");
    return std::nullopt;
  }
  if (text[0] == '1' || text.substr(0, 2) == "Qm") {
    auto mh = base58_decode(text);
    if (!mh) {
      set_why(why, "peer id: invalid base58");
      return std::nullopt;
    }
    return from_bytes(*mh, why);
  }
  if (text[0] != 'b') {
    set_why(why, "peer id: expected base58 (1..., Qm...) or a base32 CID (b...)");
    return std::nullopt;
  }
  auto cid = base32_decode(text.substr(1));
  if (!cid) {
    set_why(why, "peer id: invalid base32 in CID");
    return std::nullopt;
  }
  uint64_t version = 0, codec = 0;
  size_t used = 0, used2 = 0;
  BytesView view(*cid);
  if (read_uvarint(view, version, used) != VarintStatus::ok || version != 1 ||
      read_uvarint(view.subspan(used), codec, used2) != VarintStatus::ok) {
    set_why(why, "peer id: not a CIDv1");
    return std::nullopt;
  }
  if (codec != kCodecLibp2pKey) {
    set_why(why, "peer id: CID codec is not libp2p-key (0x72)");
    return std::nullopt;
  }
  return from_bytes(view.subspan(used + used2), why);
}

PeerId PeerId::from_ed25519(const uint8_t pk[32]) { return from_public_key(encode_ed25519_public_key(pk)); }

PeerId PeerId::from_public_key(BytesView key) {
  Bytes mh;
  if (key.size() <= kMaxIdentityDigest) {
    mh.reserve(2 + key.size());
    append_uvarint(mh, kMultihashIdentity);
    append_uvarint(mh, key.size());
    append(mh, key);
  } else {
    mh.resize(2 + crypto_hash_sha256_BYTES);
    mh[0] = kMultihashSha256;
    mh[1] = crypto_hash_sha256_BYTES;
    crypto_hash_sha256(mh.data() + 2, key.data(), key.size());
  }
  return PeerId(std::move(mh));
}

std::string PeerId::to_base58() const { return base58_encode(bytes_); }

std::string PeerId::to_cid() const {
  Bytes cid;
  cid.reserve(2 + bytes_.size());
  append_uvarint(cid, 1);
  append_uvarint(cid, kCodecLibp2pKey);
  append(cid, bytes_);
  return "b" + base32_encode(cid);
}

std::optional<std::array<uint8_t, 32>> PeerId::ed25519_key() const {
  if (bytes_.size() < 2 || bytes_[0] != kMultihashIdentity) return std::nullopt;
  uint32_t type = 0;
  Bytes data;
  if (!decode_public_key(BytesView(bytes_).subspan(2), type, data, nullptr)) return std::nullopt;
  if (type != kKeyEd25519 || data.size() != 32) return std::nullopt;
  std::array<uint8_t, 32> pk;
  std::memcpy(pk.data(), data.data(), 32);
  return pk;
}

}  // namespace chorus::p2p
