// bech32 and the age v1 format: vectors, round trips, refusals of altered or hostile files, and the
// `age` CLI in both directions (Skipped without the CLI; with CI set, a missing CLI fails).
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "age/age.hpp"
#include "age/bech32.hpp"
#include "crypto/keyring.hpp"

namespace chorus::dht {
namespace {

namespace fs = std::filesystem;
using age::AgeError;
using age::Errc;
using age::X25519Identity;
using age::X25519Recipient;

Bytes to_bytes(std::string_view s) { return Bytes(s.begin(), s.end()); }
std::string to_string(BytesView b) { return std::string(b.begin(), b.end()); }

Bytes random_bytes(size_t n) {
  Bytes b(n);
  if (n > 0) randombytes_buf(b.data(), b.size());  // an empty vector's data() may be null
  return b;
}

std::string b64(BytesView b) {
  std::string out(sodium_base64_encoded_len(b.size(), sodium_base64_VARIANT_ORIGINAL_NO_PADDING), '\0');
  sodium_bin2base64(out.data(), out.size(), b.data(), b.size(), sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
  out.pop_back();
  return out;
}

// The code decrypt() throws for file, or nullopt when it succeeds.
std::optional<Errc> decrypt_error(BytesView file, const std::vector<X25519Identity> &ids) {
  try {
    age::decrypt(file, ids);
    return std::nullopt;
  } catch (const AgeError &e) {
    return e.code();
  }
}

#define EXPECT_AGE_ERROR(expr, expected_code)                                                      \
  do {                                                                                             \
    try {                                                                                          \
      (void)(expr);                                                                                \
      ADD_FAILURE() << #expr " succeeded; expected " << age::errc_name(expected_code);             \
    } catch (const AgeError &e) {                                                                  \
      EXPECT_EQ(e.code(), expected_code) << "got " << age::errc_name(e.code()) << ": " << e.what(); \
    }                                                                                              \
  } while (0)

// ---------------------------------------------------------------------------------------------------
// bech32

TEST(Bech32, Bip173ValidVectorsDecodeAndReencode) {
  const char *valid[] = {
      "A12UEL5L",
      "a12uel5l",
      "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
      "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
      "11qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqc8247j",
      "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
      "?1ezyfcl",
  };
  for (const char *s : valid) {
    SCOPED_TRACE(s);
    bech32::Decoded d = bech32::decode(s);
    EXPECT_EQ(bech32::encode(d.hrp, d.values, d.letter_case), s);
  }
}

TEST(Bech32, Bip173InvalidVectorsAreRefused) {
  const std::string invalid[] = {
      std::string("\x20") + "1nwldj5",  // HRP character out of range
      std::string("\x7f") + "1axkwrx",
      std::string("\x80") + "1eym55h",
      "an84characterslonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1569pvx",  // > 90
      "pzry9x0s0muk",                                                                                 // no separator
      "1pzry9x0s0muk",                                                                                // empty HRP
      "x1b4n0q5v",        // invalid data character
      "li1dgmt3",         // checksum too short
      "de1lg7wt\xff",     // invalid character in the checksum
      "A1G7SGD8",         // checksum computed over the uppercase HRP
      "10a06t8",          // empty HRP
      "1qzzfhee",         // empty HRP
      "a12UEL5L",         // mixed case
      "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxx",  // one character of the checksum changed
  };
  for (const std::string &s : invalid) {
    SCOPED_TRACE(s);
    EXPECT_THROW(bech32::decode(s), bech32::Bech32Error);
  }
}

TEST(Bech32, EightToFiveBitConversion) {
  // The data part of "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw" is the values 0..31 in order,
  // which regroup into these 20 bytes.
  const Bytes bytes = {0x00, 0x44, 0x32, 0x14, 0xc7, 0x42, 0x54, 0xb6, 0x35, 0xcf,
                       0x84, 0x65, 0x3a, 0x56, 0xd7, 0xc6, 0x75, 0xbe, 0x77, 0xdf};
  EXPECT_EQ(bech32::encode_bytes("abcdef", bytes), "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw");
  EXPECT_EQ(bech32::decode_bytes("abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw", "abcdef"), bytes);
  EXPECT_THROW(bech32::decode_bytes("abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw", "abcdeg"), bech32::Bech32Error);

  // Five-bit groups whose leftover bits are not zero, or too many of them, are not a byte string.
  EXPECT_THROW(bech32::values_to_bytes(Bytes{0x01}), bech32::Bech32Error);        // 5 leftover bits
  EXPECT_THROW(bech32::values_to_bytes(Bytes{0x00, 0x01}), bech32::Bech32Error);  // non-zero padding
  EXPECT_EQ(bech32::values_to_bytes(Bytes{0x1f, 0x1c}), Bytes{0xff});
  EXPECT_THROW(bech32::values_to_bytes(Bytes{32}), bech32::Bech32Error);  // a value over 31
  EXPECT_THROW(bech32::encode("a", Bytes{32}), bech32::Bech32Error);
}

TEST(Bech32, AgeStringsHaveNoLengthLimit) {
  // An age identity is 74 characters, but the format allows far longer strings (post-quantum
  // recipients are about 2000): BIP 173's 90-character limit applies only when asked for.
  Bytes long_data = random_bytes(200);
  std::string s = bech32::encode_bytes("age", long_data);
  ASSERT_GT(s.size(), 300u);
  EXPECT_EQ(bech32::decode_bytes(s, "age"), long_data);
  EXPECT_THROW(bech32::decode(s), bech32::Bech32Error);  // default: BIP 173's limit
}

TEST(Bech32, UppercaseEncodingChecksumsTheLowercaseForm) {
  Bytes data = random_bytes(32);
  std::string upper = bech32::encode_bytes("age-secret-key-", data, bech32::Case::kUpper);
  EXPECT_EQ(upper.substr(0, 16), "AGE-SECRET-KEY-1");
  bech32::Decoded d = bech32::decode(upper, bech32::kNoLengthLimit);
  EXPECT_EQ(d.hrp, "age-secret-key-");
  EXPECT_EQ(d.letter_case, bech32::Case::kUpper);
  EXPECT_EQ(bech32::values_to_bytes(d.values), data);
  EXPECT_THROW(bech32::encode("AGE", Bytes{}), bech32::Bech32Error);  // the HRP is given in lowercase
}

// ---------------------------------------------------------------------------------------------------
// keys

TEST(AgeKeys, SpecificationVector) {
  // The X25519 example of the age specification: an identity of 32 0x42 bytes and its recipient.
  X25519Identity id = X25519Identity::parse("AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX");
  std::array<uint8_t, 32> expected{};
  expected.fill(0x42);
  EXPECT_EQ(id.secret(), expected);
  EXPECT_EQ(id.recipient().to_string(), "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj");
  EXPECT_EQ(id.to_string(), "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX");
  EXPECT_EQ(X25519Recipient::parse("age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"), id.recipient());
}

TEST(AgeKeys, GenerateAndParseRoundTrip) {
  X25519Identity id = X25519Identity::generate();
  std::string text = id.to_string();
  EXPECT_EQ(text.substr(0, 16), "AGE-SECRET-KEY-1");
  EXPECT_EQ(text.size(), 74u);
  X25519Identity back = X25519Identity::parse(text);
  EXPECT_EQ(back.secret(), id.secret());
  std::string r = id.recipient().to_string();
  EXPECT_EQ(r.substr(0, 4), "age1");
  EXPECT_EQ(r.size(), 62u);
  EXPECT_EQ(X25519Recipient::parse(r), id.recipient());
  EXPECT_FALSE(X25519Identity::generate().recipient() == id.recipient());
}

TEST(AgeKeys, MalformedKeysAreRefused) {
  X25519Identity id = X25519Identity::generate();
  std::string identity = id.to_string();
  std::string recipient = id.recipient().to_string();
  std::string lower_identity = identity;
  for (char &c : lower_identity) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string upper_recipient = recipient;
  for (char &c : upper_recipient) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));

  EXPECT_AGE_ERROR(X25519Identity::parse(lower_identity), Errc::kBadKey);
  EXPECT_AGE_ERROR(X25519Recipient::parse(upper_recipient), Errc::kBadKey);
  EXPECT_AGE_ERROR(X25519Identity::parse(recipient), Errc::kBadKey);
  EXPECT_AGE_ERROR(X25519Recipient::parse(identity), Errc::kBadKey);
  EXPECT_AGE_ERROR(X25519Recipient::parse(bech32::encode_bytes("age", random_bytes(31))), Errc::kBadKey);
  EXPECT_AGE_ERROR(X25519Recipient::parse(bech32::encode_bytes("age", random_bytes(33))), Errc::kBadKey);
  std::string bad_checksum = recipient;
  bad_checksum.back() = bad_checksum.back() == 'q' ? 'p' : 'q';
  EXPECT_AGE_ERROR(X25519Recipient::parse(bad_checksum), Errc::kBadKey);
  EXPECT_AGE_ERROR(X25519Recipient::parse(""), Errc::kBadKey);
  EXPECT_AGE_ERROR(X25519Recipient::parse("age1"), Errc::kBadKey);
}

// ---------------------------------------------------------------------------------------------------
// round trips and layout

struct Keys {
  std::vector<X25519Identity> ids;
  std::vector<X25519Recipient> recipients;
  explicit Keys(size_t n) {
    for (size_t i = 0; i < n; ++i) {
      ids.push_back(X25519Identity::generate());
      recipients.push_back(ids.back().recipient());
    }
  }
};

size_t header_size(BytesView file) {
  std::string_view text(reinterpret_cast<const char *>(file.data()), file.size());
  size_t mac = text.find("\n--- ");
  return text.find('\n', mac + 1) + 1;
}

TEST(AgeFormat, RoundTripsAcrossChunkBoundaries) {
  const size_t sizes[] = {0, 1, age::kChunkSize - 1, age::kChunkSize, age::kChunkSize + 1, 2 * age::kChunkSize,
                          200 * 1024};
  for (size_t recipients : {1u, 3u}) {
    Keys keys(recipients);
    for (size_t size : sizes) {
      SCOPED_TRACE("size " + std::to_string(size) + ", recipients " + std::to_string(recipients));
      Bytes plaintext = random_bytes(size);
      Bytes file = age::encrypt(plaintext, keys.recipients);
      // Layout: header, 16-byte nonce, one 16-byte tag per chunk (at least one chunk, the last may be full).
      size_t chunks = size == 0 ? 1 : (size + age::kChunkSize - 1) / age::kChunkSize;
      EXPECT_EQ(file.size(), header_size(file) + 16 + size + 16 * chunks);
      for (const X25519Identity &id : keys.ids) {
        EXPECT_EQ(age::decrypt(file, std::vector<X25519Identity>{id}), plaintext);
      }
    }
  }
}

TEST(AgeFormat, HeaderFollowsTheTextRules) {
  Keys keys(2);
  Bytes file = age::encrypt(to_bytes("hello"), keys.recipients);
  std::string header = to_string(BytesView(file).first(header_size(file)));
  std::istringstream lines(header);
  std::string line;
  std::getline(lines, line);
  EXPECT_EQ(line, "age-encryption.org/v1");
  for (int i = 0; i < 2; ++i) {
    std::getline(lines, line);
    EXPECT_EQ(line.substr(0, 10), "-> X25519 ");
    EXPECT_EQ(line.size(), 10u + 43u);  // 32-byte share, unpadded base64
    std::getline(lines, line);
    EXPECT_EQ(line.size(), 43u);  // 32-byte body: one line shorter than 64 columns
  }
  std::getline(lines, line);
  EXPECT_EQ(line.substr(0, 4), "--- ");
  EXPECT_EQ(line.size(), 4u + 43u);
  EXPECT_EQ(header.find('='), std::string::npos);
}

TEST(AgeFormat, EachFileHasFreshKeys) {
  Keys keys(1);
  Bytes a = age::encrypt(to_bytes("same"), keys.recipients);
  Bytes b = age::encrypt(to_bytes("same"), keys.recipients);
  EXPECT_NE(a, b);
}

TEST(AgeFormat, WrongIdentityIsNoMatch) {
  Keys keys(2);
  Keys others(2);
  Bytes file = age::encrypt(to_bytes("secret"), keys.recipients);
  EXPECT_EQ(decrypt_error(file, others.ids), Errc::kNoIdentityMatches);
  EXPECT_EQ(decrypt_error(file, {}), Errc::kNoIdentityMatches);
  std::vector<X25519Identity> mixed = {others.ids[0], keys.ids[1]};
  EXPECT_EQ(age::decrypt(file, mixed), to_bytes("secret"));
}

TEST(AgeFormat, EncryptRefusesBadRecipientLists) {
  Keys many(age::kMaxStanzas + 1);
  EXPECT_AGE_ERROR(age::encrypt(to_bytes("x"), std::vector<X25519Recipient>{}), Errc::kBadArgument);
  EXPECT_AGE_ERROR(age::encrypt(to_bytes("x"), many.recipients), Errc::kBadArgument);
  std::array<uint8_t, 32> zero{};  // a low-order point: every shared secret with it is zero
  EXPECT_AGE_ERROR(age::encrypt(to_bytes("x"), std::vector<X25519Recipient>{X25519Recipient::from_bytes(zero)}),
                   Errc::kBadKey);
}

// ---------------------------------------------------------------------------------------------------
// altered files

TEST(AgeTamper, EveryHeaderByteIsProtected) {
  Keys keys(1);
  Bytes file = age::encrypt(to_bytes("protected"), keys.recipients);
  size_t header = header_size(file);
  for (size_t i = 0; i < header; ++i) {
    for (uint8_t flip : {0x01, 0x20}) {
      Bytes altered = file;
      altered[i] ^= flip;
      EXPECT_NE(decrypt_error(altered, keys.ids), std::nullopt) << "byte " << i << " ^ " << int(flip);
    }
  }
}

// Replaces a base64 character at pos with another one, so the text stays valid base64.
void swap_base64_char(Bytes &file, size_t pos) { file[pos] = file[pos] == 'A' ? 'B' : 'A'; }

TEST(AgeTamper, AlteredMacIsMacMismatch) {
  Keys keys(1);
  Bytes file = age::encrypt(to_bytes("protected"), keys.recipients);
  size_t mac_at = to_string(file).find("\n--- ") + 5;
  swap_base64_char(file, mac_at + 10);
  EXPECT_EQ(decrypt_error(file, keys.ids), Errc::kHeaderMacMismatch);
}

TEST(AgeTamper, AlteredStanzaOfAnotherRecipientIsMacMismatch) {
  Keys keys(3);
  Bytes file = age::encrypt(to_bytes("protected"), keys.recipients);
  std::string text = to_string(file);
  // The third stanza's share and body: altering them leaves ours openable, so only the MAC catches it.
  size_t third = text.find("-> X25519 ", text.find("-> X25519 ", text.find("-> X25519 ") + 1) + 1);
  Bytes share_altered = file;
  swap_base64_char(share_altered, third + 10 + 5);
  EXPECT_EQ(decrypt_error(share_altered, {keys.ids[0]}), Errc::kHeaderMacMismatch);
  Bytes body_altered = file;
  swap_base64_char(body_altered, text.find('\n', third) + 1 + 5);
  EXPECT_EQ(decrypt_error(body_altered, {keys.ids[0]}), Errc::kHeaderMacMismatch);
  // The third recipient itself can no longer open its stanza.
  EXPECT_EQ(decrypt_error(body_altered, {keys.ids[2]}), Errc::kNoIdentityMatches);
}

TEST(AgeTamper, AlteredPayloadFailsAuthentication) {
  Keys keys(1);
  Bytes plaintext = random_bytes(200 * 1024);
  Bytes file = age::encrypt(plaintext, keys.recipients);
  size_t payload = header_size(file);
  for (size_t at : {payload, payload + 15, payload + 16, payload + 16 + 70000, file.size() - 1}) {
    Bytes altered = file;
    altered[at] ^= 0x80;
    EXPECT_EQ(decrypt_error(altered, keys.ids), Errc::kPayloadAuthFailed) << "offset " << at - payload;
  }
}

TEST(AgeTamper, TruncationIsRefused) {
  Keys keys(1);
  Bytes file = age::encrypt(random_bytes(200 * 1024), keys.recipients);
  size_t payload = header_size(file);
  const size_t sealed = age::kChunkSize + 16;
  auto cut = [&](size_t n) { return Bytes(file.begin(), file.begin() + static_cast<ptrdiff_t>(n)); };

  EXPECT_EQ(decrypt_error(cut(payload), keys.ids), Errc::kPayloadTruncated);            // no nonce
  EXPECT_EQ(decrypt_error(cut(payload + 10), keys.ids), Errc::kPayloadTruncated);       // part of the nonce
  EXPECT_EQ(decrypt_error(cut(payload + 16), keys.ids), Errc::kPayloadTruncated);       // no chunk
  EXPECT_EQ(decrypt_error(cut(payload + 16 + sealed), keys.ids), Errc::kPayloadTruncated);      // at a boundary
  EXPECT_EQ(decrypt_error(cut(payload + 16 + 2 * sealed), keys.ids), Errc::kPayloadTruncated);  // likewise
  EXPECT_EQ(decrypt_error(cut(payload + 16 + sealed + 5), keys.ids), Errc::kPayloadTruncated);  // < one tag
  EXPECT_EQ(decrypt_error(cut(file.size() - 1), keys.ids), Errc::kPayloadAuthFailed);  // mid-chunk
  EXPECT_EQ(decrypt_error(cut(payload - 1), keys.ids), Errc::kMalformedHeader);         // MAC line cut
  for (size_t n = 0; n < file.size(); n += 997) EXPECT_NE(decrypt_error(cut(n), keys.ids), std::nullopt) << n;
}

TEST(AgeTamper, AppendedDataIsRefused) {
  Keys keys(1);
  Bytes file = age::encrypt(random_bytes(1000), keys.recipients);
  Bytes appended = file;
  appended.push_back(0);
  EXPECT_EQ(decrypt_error(appended, keys.ids), Errc::kPayloadAuthFailed);

  // After a full final chunk the extra bytes form a chunk of their own, so the full one is read as
  // a middle chunk: it opens only as a final one, which names the error.
  Bytes full = age::encrypt(random_bytes(age::kChunkSize), keys.recipients);
  for (size_t extra : {size_t{1}, size_t{16}, size_t{17}, age::kChunkSize + 16}) {
    Bytes more = full;
    more.resize(more.size() + extra, 0x55);
    EXPECT_EQ(decrypt_error(more, keys.ids), Errc::kTrailingData) << extra;
  }
  // Two files back to back.
  Bytes twice = file;
  twice.insert(twice.end(), file.begin(), file.end());
  EXPECT_NE(decrypt_error(twice, keys.ids), std::nullopt);
}

// ---------------------------------------------------------------------------------------------------
// files built by hand with a known file key: payload layouts and header contents encrypt() never writes

class AgeCrafted : public ::testing::Test {
 protected:
  X25519Identity id = X25519Identity::generate();
  Bytes file_key = random_bytes(age::kFileKeySize);

  // The "-> X25519" stanza (arg line and body) wrapping file_key for id.
  std::string our_stanza() {
    std::vector<X25519Recipient> r = {id.recipient()};
    std::string header = age::detail::write_header(file_key, r);
    size_t begin = header.find('\n') + 1;
    return header.substr(begin, header.find("---") - begin);
  }

  // A header from stanza text, with a correct MAC.
  std::string header(const std::string &stanzas) {
    std::string h = "age-encryption.org/v1\n" + stanzas + "---";
    std::array<uint8_t, 32> mac = age::detail::header_mac(file_key, to_bytes(h));
    return h + " " + b64(mac) + "\n";
  }

  // The payload: a nonce and each chunk sealed with its final flag as given.
  Bytes payload(const std::vector<std::pair<Bytes, bool>> &chunks) {
    Bytes nonce = random_bytes(16);
    std::array<uint8_t, 32> key = age::detail::hkdf_sha256(file_key, nonce, "payload");
    Bytes out = nonce;
    for (size_t i = 0; i < chunks.size(); ++i) {
      uint8_t n[12] = {};
      n[10] = static_cast<uint8_t>(i);
      n[11] = chunks[i].second ? 1 : 0;
      size_t at = out.size();
      out.resize(at + chunks[i].first.size() + 16);
      crypto_aead_chacha20poly1305_ietf_encrypt(out.data() + at, nullptr, chunks[i].first.data(),
                                                chunks[i].first.size(), nullptr, 0, nullptr, n, key.data());
    }
    return out;
  }

  Bytes file(const std::string &stanzas, const std::vector<std::pair<Bytes, bool>> &chunks) {
    Bytes out = to_bytes(header(stanzas));
    Bytes p = payload(chunks);
    out.insert(out.end(), p.begin(), p.end());
    return out;
  }

  std::optional<Errc> error(const Bytes &f) { return decrypt_error(f, {id}); }
};

TEST_F(AgeCrafted, HandBuiltFileDecrypts) {
  Bytes a = random_bytes(age::kChunkSize), b = random_bytes(10);
  Bytes f = file(our_stanza(), {{a, false}, {b, true}});
  Bytes expected = a;
  expected.insert(expected.end(), b.begin(), b.end());
  EXPECT_EQ(age::decrypt(f, std::vector<X25519Identity>{id}), expected);
}

TEST_F(AgeCrafted, PayloadChunkRules) {
  Bytes full = random_bytes(age::kChunkSize);
  // A full chunk then an empty final one: the format says the final chunk is empty only for an
  // empty plaintext.
  EXPECT_EQ(error(file(our_stanza(), {{full, false}, {Bytes{}, true}})), Errc::kEmptyLastChunk);
  // An empty plaintext is one empty final chunk.
  EXPECT_EQ(age::decrypt(file(our_stanza(), {{Bytes{}, true}}), std::vector<X25519Identity>{id}), Bytes{});
  // No chunk carries the final flag.
  EXPECT_EQ(error(file(our_stanza(), {{full, false}, {full, false}})), Errc::kPayloadTruncated);
  EXPECT_EQ(error(file(our_stanza(), {{random_bytes(5), false}})), Errc::kPayloadAuthFailed);
  // A final chunk that is not last.
  EXPECT_EQ(error(file(our_stanza(), {{full, true}, {random_bytes(3), true}})), Errc::kTrailingData);
  // A short chunk in the middle.
  EXPECT_NE(error(file(our_stanza(), {{random_bytes(100), false}, {random_bytes(3), true}})), std::nullopt);
}

TEST_F(AgeCrafted, OtherRecipientTypesAreIgnored) {
  std::string full_line(64, 'A');
  std::string unknown = "-> ssh-ed25519 Xq3+1w QUJD\nQUJDRA\n-> example.com/enigma\n" + full_line + "\n\n";
  Bytes plaintext = to_bytes("ignored stanzas");
  EXPECT_EQ(age::decrypt(file(unknown + our_stanza(), {{plaintext, true}}), std::vector<X25519Identity>{id}),
            plaintext);
  EXPECT_EQ(age::decrypt(file(our_stanza() + unknown, {{plaintext, true}}), std::vector<X25519Identity>{id}),
            plaintext);
  // Only stanzas we cannot open: no identity matches.
  EXPECT_EQ(error(file(unknown, {{plaintext, true}})), Errc::kNoIdentityMatches);
}

TEST_F(AgeCrafted, ScryptRules) {
  std::string scrypt = "-> scrypt " + b64(random_bytes(16)) + " 18\n" + b64(random_bytes(32)) + "\n";
  Bytes x = to_bytes("x");
  EXPECT_EQ(error(file(scrypt, {{x, true}})), Errc::kNoIdentityMatches);  // a passphrase file
  EXPECT_EQ(error(file(scrypt + our_stanza(), {{x, true}})), Errc::kMalformedHeader);  // must be alone
}

TEST_F(AgeCrafted, X25519StanzaRules) {
  Bytes x = to_bytes("x");
  std::string body = b64(random_bytes(32)) + "\n";
  std::string share = b64(X25519Identity::generate().recipient().bytes());
  // The all-zero point is of low order: the shared secret is zero, which the format forbids.
  EXPECT_EQ(error(file("-> X25519 " + b64(Bytes(32, 0)) + "\n" + body + our_stanza(), {{x, true}})),
            Errc::kMalformedHeader);
  EXPECT_EQ(error(file("-> X25519 " + share + " extra\n" + body + our_stanza(), {{x, true}})),
            Errc::kMalformedHeader);
  EXPECT_EQ(error(file("-> X25519\n" + body + our_stanza(), {{x, true}})), Errc::kMalformedHeader);
  EXPECT_EQ(error(file("-> X25519 " + b64(random_bytes(31)) + "\n" + body + our_stanza(), {{x, true}})),
            Errc::kMalformedHeader);
  EXPECT_EQ(error(file("-> X25519 " + share + "\n" + b64(random_bytes(33)) + "\n" + our_stanza(), {{x, true}})),
            Errc::kMalformedHeader);
  // A share whose last character carries non-zero unused bits: not canonical base64.
  std::string non_canonical = share;
  non_canonical.back() = non_canonical.back() == 'A' ? 'B' : static_cast<char>(non_canonical.back() | 1);
  if (non_canonical.back() == share.back()) non_canonical.back() = 'B';
  EXPECT_EQ(error(file("-> X25519 " + non_canonical + "\n" + body + our_stanza(), {{x, true}})),
            Errc::kMalformedHeader);
}

TEST_F(AgeCrafted, HeaderGrammar) {
  Bytes x = to_bytes("x");
  std::string ours = our_stanza();
  auto with = [&](const std::string &stanzas) { return error(file(stanzas, {{x, true}})); };
  EXPECT_EQ(with(""), Errc::kMalformedHeader);                                  // no stanza
  EXPECT_EQ(with("-> \n\n" + ours), Errc::kMalformedHeader);                     // no argument
  EXPECT_EQ(with("->  a\n\n" + ours), Errc::kMalformedHeader);                   // empty argument
  EXPECT_EQ(with("-> a  b\n\n" + ours), Errc::kMalformedHeader);                 // empty argument
  EXPECT_EQ(with("-> a\tb\n\n" + ours), Errc::kMalformedHeader);                 // not VCHAR
  EXPECT_EQ(with("-> a\nQUE=\n" + ours), Errc::kMalformedHeader);                // padding
  EXPECT_EQ(with("-> a\nQUF\n" + ours), Errc::kMalformedHeader);                 // non-canonical
  EXPECT_EQ(with("-> a\nQUE\r\n" + ours), Errc::kMalformedHeader);               // CR
  EXPECT_EQ(with("-> a\n" + std::string(65, 'A') + "\n\n" + ours), Errc::kMalformedHeader);  // 65 columns
  EXPECT_EQ(with("-> a\n" + std::string(64, 'A') + "\n" + ours), Errc::kMalformedHeader);  // no final short line
  EXPECT_EQ(with("junk\n" + ours), Errc::kMalformedHeader);
  EXPECT_EQ(with("-> a\n" + std::string(32, 'A') + "\n" + std::string(32, 'A') + "\n" + ours), Errc::kMalformedHeader);
  // An empty final body line after full ones is the rule, not an error.
  EXPECT_EQ(with("-> a\n" + std::string(64, 'A') + "\n\n" + ours), std::nullopt);

  // MAC line shapes.
  std::string h = "age-encryption.org/v1\n" + ours;
  EXPECT_EQ(decrypt_error(to_bytes(h + "---\n"), {id}), Errc::kMalformedHeader);
  EXPECT_EQ(decrypt_error(to_bytes(h + "--- " + b64(random_bytes(31)) + "\n"), {id}), Errc::kMalformedHeader);
  EXPECT_EQ(decrypt_error(to_bytes(h + "---  " + b64(random_bytes(32)) + "\n"), {id}), Errc::kMalformedHeader);
}

TEST_F(AgeCrafted, HostileHeadersAreBounded) {
  Bytes x = to_bytes("x");
  std::string ours = our_stanza();
  std::string many;
  for (size_t i = 0; i < age::kMaxStanzas; ++i) many += "-> a\n\n";
  EXPECT_EQ(error(file(many + ours, {{x, true}})), Errc::kMalformedHeader);  // 257 stanzas
  EXPECT_EQ(error(file("-> " + std::string(age::kMaxLineLength + 1, 'a') + "\n\n" + ours, {{x, true}})),
            Errc::kMalformedHeader);
  std::string big;
  std::string full_line(64, 'A');
  for (int s = 0; s < 4; ++s) {
    big += "-> a\n";
    for (int i = 0; i < 600; ++i) big += full_line + "\n";
    big += "\n";
  }
  EXPECT_EQ(error(file(big + ours, {{x, true}})), Errc::kMalformedHeader);  // over 128 KiB
  // A header that never ends.
  std::string endless = "age-encryption.org/v1\n-> a\n";
  while (endless.size() < 300 * 1024) endless += full_line + "\n";
  EXPECT_EQ(decrypt_error(to_bytes(endless), {id}), Errc::kMalformedHeader);
}

TEST(AgeFormat, NotAnAgeFile) {
  Keys keys(1);
  EXPECT_EQ(decrypt_error(Bytes{}, keys.ids), Errc::kNotAgeFile);
  EXPECT_EQ(decrypt_error(to_bytes("hello world\n"), keys.ids), Errc::kNotAgeFile);
  EXPECT_EQ(decrypt_error(to_bytes("age-encryption.org"), keys.ids), Errc::kNotAgeFile);
  EXPECT_EQ(decrypt_error(to_bytes("age-encryption.org/v2\n-> X25519 a\n\n--- a\n"), keys.ids),
            Errc::kUnsupportedVersion);
  EXPECT_EQ(decrypt_error(to_bytes("age-encryption.org/v1"), keys.ids), Errc::kMalformedHeader);
  // Armor around something that is not an age file.
  EXPECT_EQ(decrypt_error(to_bytes("-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n-----END AGE ENCRYPTED FILE-----\n"),
                          keys.ids),
            Errc::kNotAgeFile);
}

TEST(AgeArmor, RoundTrip) {
  Keys keys(2);
  for (size_t size : {size_t{0}, size_t{1}, size_t{47}, size_t{48}, size_t{200 * 1024 + 1}}) {
    Bytes plaintext = random_bytes(size);
    Bytes file = age::encrypt(plaintext, keys.recipients);
    std::string armored = age::armor(file);
    EXPECT_EQ(armored.rfind("-----BEGIN AGE ENCRYPTED FILE-----\n", 0), 0u);
    EXPECT_TRUE(age::is_armored(to_bytes(armored)));
    EXPECT_FALSE(age::is_armored(file));
    EXPECT_EQ(age::dearmor(to_bytes(armored)), file);
    EXPECT_EQ(age::decrypt(to_bytes(armored), keys.ids), plaintext);
    // Whitespace around the block and CRLF line ends are accepted.
    std::string crlf;
    for (char c : armored) {
      if (c == '\n') crlf += "\r\n";
      else crlf += c;
    }
    EXPECT_EQ(age::decrypt(to_bytes("\n  " + crlf + "\r\n\t\n"), keys.ids), plaintext);
  }
}

TEST(AgeArmor, StrictRulesRefuseTheRest) {
  Keys keys(1);
  // 101 bytes: the file's length is not a multiple of 3, so the base64 ends with padding.
  std::string armored = age::armor(age::encrypt(random_bytes(101), keys.recipients));
  const std::string begin = "-----BEGIN AGE ENCRYPTED FILE-----\n";
  const std::string end = "-----END AGE ENCRYPTED FILE-----\n";
  std::string body = armored.substr(begin.size(), armored.size() - begin.size() - end.size());
  ASSERT_EQ(age::decrypt(to_bytes(begin + body + end), keys.ids).size(), 101u);
  ASSERT_NE(body.find('='), std::string::npos);

  std::string joined = body;  // the body on one line: over 64 columns
  joined.erase(std::remove(joined.begin(), joined.end(), '\n'), joined.end());
  std::string short_first = body.substr(0, 10) + "\n" + body.substr(10);  // a short line before the last
  std::string unpadded = body;
  unpadded.erase(std::remove(unpadded.begin(), unpadded.end(), '='), unpadded.end());
  const std::string cases[] = {
      begin + body,                               // no END line
      begin + body + end + "x",                   // data after END
      begin + end,                                // no data
      begin + joined + end,                       // long line
      begin + short_first + end,                  // short line in the middle
      begin + unpadded + end,                     // padding missing
      begin + "YWdm\n" + end.substr(0, 10),       // cut END line
      begin + "YR==\n" + end,                     // non-canonical (unused bits set)
      begin + "YWd@\n" + end,                     // not base64
      begin + "\n" + body + end,                  // empty line
      "-----BEGIN AGE ENCRYPTED FILE-----  \n" + body + end,  // junk on the BEGIN line
  };
  for (const std::string &c : cases) {
    EXPECT_EQ(decrypt_error(to_bytes(c), keys.ids), Errc::kMalformedArmor) << c;
  }
}

// ---------------------------------------------------------------------------------------------------
// the age CLI (Debian package `age`), both ways

std::optional<fs::path> find_tool(const char *name) {
  const char *path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    fs::path candidate = fs::path(dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

// Skips the test without the CLI, except under CI, where a missing CLI is a failure.
#define REQUIRE_AGE_CLI()                                                                                    \
  do {                                                                                                       \
    if (!find_tool("age") || !find_tool("age-keygen")) {                                                     \
      if (std::getenv("CI") != nullptr) FAIL() << "the age CLI (Debian package `age`) is missing and CI is set"; \
      GTEST_SKIP() << "the age CLI (Debian package `age`) is not installed";                                 \
    }                                                                                                        \
  } while (0)

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "dht-age-test.XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path &path() const { return path_; }
  fs::path operator/(const std::string &name) const { return path_ / name; }

 private:
  fs::path path_;
};

void write_file(const fs::path &path, BytesView bytes, mode_t mode = 0600) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

Bytes read_file(const fs::path &path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Runs argv with stdout to out_file (or /dev/null) and stderr to a file; returns the exit status and
// stderr's text.
struct RunResult {
  int status = -1;
  std::string err;
};

RunResult run(const std::vector<std::string> &argv, const fs::path &dir, const std::optional<fs::path> &out_file = {}) {
  fs::path err_path = dir / "stderr.txt";
  pid_t pid = ::fork();
  if (pid == 0) {
    int out = ::open(out_file ? out_file->c_str() : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int in = ::open("/dev/null", O_RDONLY);
    if (out < 0 || err < 0 || in < 0) ::_exit(126);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    std::vector<char *> args;
    for (const std::string &a : argv) args.push_back(const_cast<char *>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  RunResult r;
  int wstatus = 0;
  if (pid > 0 && ::waitpid(pid, &wstatus, 0) == pid && WIFEXITED(wstatus)) r.status = WEXITSTATUS(wstatus);
  r.err = to_string(read_file(err_path));
  return r;
}

const size_t kCliSizes[] = {0, 1, age::kChunkSize, 2 * age::kChunkSize, 200 * 1024 + 7};

TEST(AgeCli, CliDecryptsWhatWeWrite) {
  REQUIRE_AGE_CLI();
  TempDir dir;
  Keys keys(3);
  for (size_t i = 0; i < keys.ids.size(); ++i) {
    write_file(dir / ("id" + std::to_string(i)), to_bytes(keys.ids[i].to_string() + "\n"));
  }
  for (size_t size : kCliSizes) {
    SCOPED_TRACE("size " + std::to_string(size));
    Bytes plaintext = random_bytes(size);
    write_file(dir / "file.age", age::encrypt(plaintext, keys.recipients));
    for (size_t i = 0; i < keys.ids.size(); ++i) {
      fs::remove(dir / "out");
      RunResult r = run({"age", "-d", "-i", (dir / ("id" + std::to_string(i))).string(), "-o", (dir / "out").string(),
                         (dir / "file.age").string()},
                        dir.path());
      ASSERT_EQ(r.status, 0) << r.err;
      EXPECT_EQ(read_file(dir / "out"), plaintext) << "identity " << i;
    }
  }
}

TEST(AgeCli, WeDecryptWhatCliWrites) {
  REQUIRE_AGE_CLI();
  TempDir dir;
  std::vector<X25519Identity> ids;
  std::vector<std::string> recipient_args;
  for (int i = 0; i < 3; ++i) {
    fs::path key = dir / ("key" + std::to_string(i));
    RunResult r = run({"age-keygen", "-o", key.string()}, dir.path());
    ASSERT_EQ(r.status, 0) << r.err;
    // age-keygen's file: "# created: ...", "# public key: age1...", then the identity.
    std::string text = to_string(read_file(key));
    std::istringstream lines(text);
    std::string line, public_key;
    std::optional<X25519Identity> id;
    while (std::getline(lines, line)) {
      if (line.rfind("# public key: ", 0) == 0) public_key = line.substr(14);
      if (line.rfind("AGE-SECRET-KEY-1", 0) == 0) id = X25519Identity::parse(line);
    }
    ASSERT_TRUE(id.has_value()) << text;
    EXPECT_EQ(id->recipient().to_string(), public_key);
    EXPECT_EQ(X25519Recipient::parse(public_key), id->recipient());
    ids.push_back(*id);
    recipient_args.push_back("-r");
    recipient_args.push_back(public_key);
  }
  for (size_t size : kCliSizes) {
    SCOPED_TRACE("size " + std::to_string(size));
    Bytes plaintext = random_bytes(size);
    write_file(dir / "in", plaintext);
    std::vector<std::string> argv = {"age", "-e"};
    argv.insert(argv.end(), recipient_args.begin(), recipient_args.end());
    argv.insert(argv.end(), {"-o", (dir / "file.age").string(), (dir / "in").string()});
    fs::remove(dir / "file.age");
    RunResult r = run(argv, dir.path());
    ASSERT_EQ(r.status, 0) << r.err;
    Bytes file = read_file(dir / "file.age");
    for (size_t i = 0; i < ids.size(); ++i) {
      EXPECT_EQ(age::decrypt(file, std::vector<X25519Identity>{ids[i]}), plaintext) << "identity " << i;
    }
    EXPECT_EQ(decrypt_error(file, Keys(1).ids), Errc::kNoIdentityMatches);
  }
}

TEST(AgeCli, CliDerivesOurRecipients) {
  REQUIRE_AGE_CLI();
  TempDir dir;
  X25519Identity id = X25519Identity::generate();
  write_file(dir / "id", to_bytes(id.to_string() + "\n"));
  RunResult r = run({"age-keygen", "-y", (dir / "id").string()}, dir.path(), dir / "recipient");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(to_string(read_file(dir / "recipient")), id.recipient().to_string() + "\n");
}

TEST(AgeCli, ArmoredBothWays) {
  REQUIRE_AGE_CLI();
  TempDir dir;
  Keys keys(2);
  Bytes plaintext = random_bytes(100 * 1024);
  write_file(dir / "in", plaintext);
  RunResult r = run({"age", "-a", "-r", keys.recipients[0].to_string(), "-r", keys.recipients[1].to_string(), "-o",
                     (dir / "cli.age").string(), (dir / "in").string()},
                    dir.path());
  ASSERT_EQ(r.status, 0) << r.err;
  Bytes from_cli = read_file(dir / "cli.age");
  ASSERT_TRUE(age::is_armored(from_cli));
  EXPECT_EQ(age::decrypt(from_cli, std::vector<X25519Identity>{keys.ids[1]}), plaintext);

  write_file(dir / "id", to_bytes(keys.ids[0].to_string() + "\n"));
  write_file(dir / "ours.age", to_bytes(age::armor(age::encrypt(plaintext, keys.recipients))));
  r = run({"age", "-d", "-i", (dir / "id").string(), "-o", (dir / "out").string(), (dir / "ours.age").string()},
          dir.path());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(read_file(dir / "out"), plaintext);
}

TEST(AgeCli, CliReadsKeyringFiles) {
  REQUIRE_AGE_CLI();
  TempDir dir;
  RoleKey key = Keyring::generate_role(dir.path(), "architect", Authority::kDecision);
  Bytes plaintext = random_bytes(70000);
  std::vector<X25519Recipient> r = {key.identity.recipient()};
  write_file(dir / "file.age", age::encrypt(plaintext, r));
  RunResult result = run({"age", "-d", "-i", (dir.path() / "roles" / "architect.key").string(), "-o",
                          (dir / "out").string(), (dir / "file.age").string()},
                         dir.path());
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_EQ(read_file(dir / "out"), plaintext);
}

}  // namespace
}  // namespace chorus::dht
