#include <gtest/gtest.h>

#include <sodium.h>

#include <cstring>
#include <unordered_set>

#include "wire/base32.hpp"
#include "wire/base58.hpp"
#include "wire/identity.hpp"
#include "wire/peer_id.hpp"

using namespace chorus::p2p;

namespace {

Bytes hex(std::string_view s) { return *from_hex(s); }

// The libp2p specification's Ed25519 test key (docs/protocols.md, Keys and peer ids).
constexpr const char *kPrivProto =
    "080112407e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b8"
    "71c3cacf6010f0e42d474fce27e";
constexpr const char *kSeed = "7e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d";
constexpr const char *kPk = "1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e";
constexpr const char *kPubProto = "080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e";
constexpr const char *kIdBytes = "0024080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e";
constexpr const char *kIdBase58 = "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq";
constexpr const char *kIdCid = "bafzaajaiaejcahwr5d5ofrfbis4l5d6uwr57hu5tjodrypfm6yaq6dsc2r2pzyt6";
constexpr const char *kHelloSig =
    "54f7fd037768d6479d14967d3df9500ba0720166b931e5e9912e58a0ac49fbfcef7aa3adc9b89d736d7411749dee70eb00ff8792ecc5e8c"
    "8c39c0b97f710d40c";

}  // namespace

TEST(Base58, KnownVectors) {
  EXPECT_EQ(base58_encode(as_bytes("")), "");
  EXPECT_EQ(base58_encode(as_bytes("hello world")), "StV1DL6CwTryKyV");
  EXPECT_EQ(base58_encode(hex("0000287fb4cd")), "11233QC4");
  EXPECT_EQ(to_hex(*base58_decode("11233QC4")), "0000287fb4cd");
  EXPECT_EQ(as_string_view(*base58_decode("StV1DL6CwTryKyV")), "hello world");
  EXPECT_TRUE(base58_decode("")->empty());
}

TEST(Base58, RejectsBadCharactersAndHugeInput) {
  EXPECT_FALSE(base58_decode("0OIl"));
  EXPECT_FALSE(base58_decode("abc!"));
  EXPECT_FALSE(base58_decode(std::string(1025, '2')));
  EXPECT_TRUE(base58_decode(std::string(1024, '2')));
}

TEST(Base32, Rfc4648VectorsLowerNoPad) {
  struct Case {
    const char *plain, *enc;
  } cases[] = {{"", ""},          {"f", "my"},          {"fo", "mzxq"},          {"foo", "mzxw6"},
               {"foob", "mzxw6yq"}, {"fooba", "mzxw6ytb"}, {"foobar", "mzxw6ytboi"}};
  for (const auto &c : cases) {
    EXPECT_EQ(base32_encode(as_bytes(c.plain)), c.enc);
    auto d = base32_decode(c.enc);
    ASSERT_TRUE(d) << c.enc;
    EXPECT_EQ(as_string_view(*d), c.plain);
  }
}

TEST(Base32, RejectsBadInput) {
  EXPECT_FALSE(base32_decode("MZXW6"));     // upper case is another multibase
  EXPECT_FALSE(base32_decode("mzxw6==="));  // padding
  EXPECT_FALSE(base32_decode("m"));         // impossible length
  EXPECT_FALSE(base32_decode("mzx"));       // impossible length
  EXPECT_FALSE(base32_decode("mz"));        // non-zero leftover bits ("my" is canonical)
  EXPECT_FALSE(base32_decode("m1"));        // '1' is not in the alphabet
}

TEST(PeerId, SpecVectorFromKey) {
  Bytes pk = hex(kPk);
  EXPECT_EQ(to_hex(encode_ed25519_public_key(pk.data())), kPubProto);
  PeerId id = PeerId::from_ed25519(pk.data());
  EXPECT_EQ(to_hex(id.bytes()), kIdBytes);
  EXPECT_EQ(id.to_base58(), kIdBase58);
  EXPECT_EQ(id.to_cid(), kIdCid);
  EXPECT_EQ(id.to_string(), kIdBase58);
  auto key = id.ed25519_key();
  ASSERT_TRUE(key);
  EXPECT_EQ(to_hex(*key), kPk);
  EXPECT_EQ(PeerId::from_public_key(hex(kPubProto)), id);
}

TEST(PeerId, ParsesBothTextForms) {
  std::string why;
  auto a = PeerId::parse(kIdBase58, &why);
  ASSERT_TRUE(a) << why;
  auto b = PeerId::parse(kIdCid, &why);
  ASSERT_TRUE(b) << why;
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(to_hex(a->bytes()), kIdBytes);
}

TEST(PeerId, Sha256IdsFromLargeKeys) {
  Bytes big_key(300, 0x42);  // stands in for an RSA PublicKey protobuf
  PeerId id = PeerId::from_public_key(big_key);
  ASSERT_EQ(id.bytes().size(), 34u);
  EXPECT_EQ(id.bytes()[0], 0x12);
  EXPECT_EQ(id.bytes()[1], 0x20);
  EXPECT_EQ(id.to_base58().substr(0, 2), "Qm");
  EXPECT_FALSE(id.ed25519_key());
  std::string why;
  auto back = PeerId::parse(id.to_base58(), &why);
  ASSERT_TRUE(back) << why;
  EXPECT_EQ(*back, id);
  auto back_cid = PeerId::parse(id.to_cid(), &why);
  ASSERT_TRUE(back_cid) << why;
  EXPECT_EQ(*back_cid, id);
  // A public IPFS bootstrap node (RSA key, sha2-256 id).
  EXPECT_TRUE(PeerId::parse("QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN", &why)) << why;
}

TEST(PeerId, RejectsBadIds) {
  std::string why;
  EXPECT_FALSE(PeerId::parse("", &why));
  EXPECT_FALSE(PeerId::parse("12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3p0", &why));  // '0'
  EXPECT_FALSE(PeerId::parse("12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3p", &why));   // truncated
  EXPECT_NE(why.find("length"), std::string::npos) << why;
  EXPECT_FALSE(PeerId::parse("zQ3shw", &why));  // other multibase
  // CID with the dag-pb codec (0x70) instead of libp2p-key.
  Bytes cid = {0x01, 0x70};
  Bytes idb = hex(kIdBytes);
  cid.insert(cid.end(), idb.begin(), idb.end());
  EXPECT_FALSE(PeerId::parse("b" + base32_encode(cid), &why));
  EXPECT_NE(why.find("0x72"), std::string::npos) << why;
  // Identity multihash over 42 bytes, unknown hash code, wrong sha256 length.
  Bytes long_identity = {0x00, 43};
  long_identity.resize(45, 1);
  EXPECT_FALSE(PeerId::from_bytes(long_identity, &why));
  EXPECT_FALSE(PeerId::from_bytes(hex("1314" "0000000000000000000000000000000000000000"), &why));
  EXPECT_NE(why.find("unsupported multihash code 0x13"), std::string::npos) << why;
  EXPECT_FALSE(PeerId::from_bytes(hex("121f" "00000000000000000000000000000000000000000000000000000000000000"), &why));
  EXPECT_FALSE(PeerId::from_bytes(hex(""), &why));
  EXPECT_FALSE(PeerId::from_bytes(hex("0080"), &why));  // non-minimal varint length
  EXPECT_FALSE(PeerId::parse(std::string(300, '1'), &why));
}

TEST(PeerId, OrderingAndHash) {
  uint8_t s1[32], s2[32];
  std::memset(s1, 0x11, 32);
  std::memset(s2, 0x22, 32);
  PeerId a = Identity::from_seed(s1).peer_id(), b = Identity::from_seed(s2).peer_id();
  EXPECT_NE(a, b);
  EXPECT_TRUE((a < b) != (b < a));
  std::unordered_set<PeerId> set{a, b, a};
  EXPECT_EQ(set.size(), 2u);
  EXPECT_TRUE(PeerId().empty());
  EXPECT_NE(PeerId(), a);
}

TEST(PublicKeyProtobuf, DecodesAndRejects) {
  uint32_t type = 99;
  Bytes data;
  std::string why;
  ASSERT_TRUE(decode_public_key(hex(kPubProto), type, data, &why)) << why;
  EXPECT_EQ(type, 1u);
  EXPECT_EQ(to_hex(data), kPk);
  ASSERT_TRUE(decode_public_key(hex(kPrivProto), type, data, &why)) << why;
  EXPECT_EQ(data.size(), 64u);
  EXPECT_FALSE(decode_public_key(hex("0801"), type, data, &why));                   // no data
  EXPECT_FALSE(decode_public_key(hex("1201aa"), type, data, &why));                 // no type
  EXPECT_FALSE(decode_public_key(hex("1201aa0801"), type, data, &why));             // wrong order
  EXPECT_FALSE(decode_public_key(hex("080408011201aa"), type, data, &why));         // type twice
  EXPECT_FALSE(decode_public_key(hex("08041201aa"), type, data, &why));             // unknown type 4
  EXPECT_NE(why.find("type 4"), std::string::npos) << why;
  EXPECT_FALSE(decode_public_key(hex("08011201aa1801"), type, data, &why));         // unknown field
  EXPECT_FALSE(decode_public_key(hex("08011205aa"), type, data, &why));             // truncated
  EXPECT_FALSE(decode_public_key(hex("0881001201aa"), type, data, &why));           // padded varint
  EXPECT_NE(why.find("non-canonical"), std::string::npos) << why;
  // RSA keys decode (type 0); we cannot verify them but must be able to tell.
  ASSERT_TRUE(decode_public_key(hex("08001203010203"), type, data, &why)) << why;
  EXPECT_EQ(type, 0u);
}

TEST(IdentityKeys, SpecSignatureAndSeeds) {
  Bytes seed = hex(kSeed);
  Identity id = Identity::from_seed(seed.data());
  EXPECT_EQ(to_hex(id.public_key()), kPk);
  EXPECT_EQ(to_hex(id.public_key_protobuf()), kPubProto);
  EXPECT_EQ(to_hex(id.private_key_protobuf()), kPrivProto);
  EXPECT_EQ(id.peer_id().to_base58(), kIdBase58);
  auto sig = id.sign(as_bytes("hello"));
  EXPECT_EQ(to_hex(sig), kHelloSig);
  EXPECT_TRUE(Identity::verify(id.public_key().data(), as_bytes("hello"), sig.data()));
  EXPECT_FALSE(Identity::verify(id.public_key().data(), as_bytes("hellO"), sig.data()));
  sig[0] ^= 1;
  EXPECT_FALSE(Identity::verify(id.public_key().data(), as_bytes("hello"), sig.data()));

  uint8_t s[32];
  std::memset(s, 0x11, 32);
  Identity a = Identity::from_seed(s);
  EXPECT_EQ(to_hex(a.public_key()), "d04ab232742bb4ab3a1368bd4615e4e6d0224ab71a016baf8520a332c9778737");
  EXPECT_EQ(a.peer_id().to_base58(), "12D3KooWPqT2nMDSiXUSx5D7fasaxhxKigVhcqfkKqrLghCq9jxz");
  std::memset(s, 0x22, 32);
  Identity b = Identity::from_seed(s);
  EXPECT_EQ(to_hex(b.public_key()), "a09aa5f47a6759802ff955f8dc2d2a14a5c99d23be97f864127ff9383455a4f0");
  EXPECT_EQ(b.peer_id().to_base58(), "12D3KooWLdJAwPtyQ5RFnr9wGXsQzpf3P2SeqFbYkqbfVehLu4Ns");
}

TEST(IdentityKeys, GenerateGivesDistinctWorkingKeys) {
  Identity a = Identity::generate(), b = Identity::generate();
  EXPECT_NE(a.peer_id(), b.peer_id());
  auto sig = a.sign(as_bytes("x"));
  EXPECT_TRUE(Identity::verify(a.public_key().data(), as_bytes("x"), sig.data()));
  EXPECT_FALSE(Identity::verify(b.public_key().data(), as_bytes("x"), sig.data()));
  EXPECT_EQ(a.peer_id().ed25519_key(), a.public_key());
}
