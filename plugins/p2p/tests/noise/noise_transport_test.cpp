// NoiseTransport: framing at the size boundaries, chunked input, tampering and the nonce guard.
#include <gtest/gtest.h>

#include "noise_test_util.hpp"
#include "noise/noise_transport.hpp"

namespace chorus::p2p {
namespace {

using Status = NoiseTransport::Status;

// Two transports wired to each other with fixed keys (a->b uses k1, b->a uses k2).
struct Link {
  NoiseTransport a, b;
  Link() {
    noise::Key k1, k2;
    k1.fill(0xa1);
    k2.fill(0xb2);
    noise::CipherState a_send, a_recv, b_send, b_recv;
    a_send.initialize_key(k1);
    b_recv.initialize_key(k1);
    b_send.initialize_key(k2);
    a_recv.initialize_key(k2);
    a = NoiseTransport(std::move(a_send), std::move(a_recv));
    b = NoiseTransport(std::move(b_send), std::move(b_recv));
  }
};

Bytes pattern(size_t n) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i * 31 + (i >> 8));
  return b;
}

// Frame lengths found by walking the u16 prefixes.
std::vector<size_t> frame_lengths(BytesView wire) {
  std::vector<size_t> out;
  size_t pos = 0;
  while (pos + 2 <= wire.size()) {
    size_t len = size_t{wire[pos]} << 8 | wire[pos + 1];
    out.push_back(len);
    pos += 2 + len;
  }
  EXPECT_EQ(pos, wire.size());
  return out;
}

TEST(NoiseTransport, RoundTripAtFrameBoundaries) {
  struct Case {
    size_t size;
    std::vector<size_t> frames;
  };
  const Case cases[] = {
      {0, {}},
      {1, {17}},
      {65024, {65040}},  // kSendFramePlaintext
      {65025, {65040, 17}},
      {1 << 20, {}},  // 16 full frames and an 8192-byte tail
  };
  static_assert(NoiseTransport::kSendFramePlaintext == 65024);
  for (const Case &c : cases) {
    SCOPED_TRACE("size " + std::to_string(c.size));
    Link l;
    Bytes msg = pattern(c.size), wire;
    ASSERT_TRUE(l.a.encrypt(msg, wire));
    EXPECT_EQ(wire.size(), NoiseTransport::encrypted_size(c.size));
    std::vector<size_t> lens = frame_lengths(wire);
    if (c.size == (1u << 20)) {
      ASSERT_EQ(lens.size(), 17u);
      EXPECT_EQ(lens.back(), (1u << 20) - 16 * 65024 + 16);
    } else {
      EXPECT_EQ(lens, c.frames);
    }
    for (size_t len : lens) EXPECT_LE(len, 65535u);
    Bytes plain;
    size_t used = 0;
    Status s = l.b.decrypt(wire, used, plain);
    EXPECT_EQ(s, c.size == 0 ? Status::need_more : Status::ok);
    EXPECT_EQ(used, wire.size());
    EXPECT_EQ(plain, msg);
  }
}

// We send 65040-byte frames, but a peer may send the largest the u16 prefix allows.
TEST(NoiseTransport, DecryptsFramesOfTheMaximumSize) {
  noise::Key k;
  k.fill(0xa1);
  noise::CipherState sender;
  sender.initialize_key(k);
  Link l;  // l.b receives with the same key
  const Bytes msg = pattern(NoiseTransport::kMaxFramePlaintext);
  Bytes wire(2 + 65535);
  wire[0] = 0xff;
  wire[1] = 0xff;
  ASSERT_TRUE(sender.encrypt_with_ad({}, msg.data(), msg.size(), wire.data() + 2));
  Bytes plain;
  size_t used = 0;
  ASSERT_EQ(l.b.decrypt(wire, used, plain), Status::ok) << l.b.error();
  EXPECT_EQ(used, wire.size());
  EXPECT_EQ(plain, msg);
}

TEST(NoiseTransport, ChunkedInputDecryptsWholeFramesOnly) {
  for (size_t chunk : {size_t{1}, size_t{2}, size_t{17}, size_t{18}, size_t{1000}, size_t{65537}}) {
    SCOPED_TRACE("chunk " + std::to_string(chunk));
    Link l;
    Bytes msg = pattern(200000), wire;
    ASSERT_TRUE(l.a.encrypt(BytesView(msg).first(100), wire));
    ASSERT_TRUE(l.a.encrypt(BytesView(msg).subspan(100), wire));
    Bytes buffer, plain;
    size_t offered = 0;
    while (offered < wire.size()) {
      size_t n = std::min(chunk, wire.size() - offered);
      append(buffer, BytesView(wire).subspan(offered, n));
      offered += n;
      size_t used = 0;
      size_t before = plain.size();
      Status s = l.b.decrypt(buffer, used, plain);
      ASSERT_NE(s, Status::failed) << l.b.error();
      EXPECT_EQ(s == Status::ok, used > 0);
      EXPECT_EQ(used == 0, plain.size() == before);
      buffer.erase(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(used));
    }
    EXPECT_TRUE(buffer.empty());
    EXPECT_EQ(plain, msg);
  }
}

TEST(NoiseTransport, BothDirectionsAreIndependent) {
  Link l;
  Bytes w1, w2, p1, p2;
  size_t used = 0;
  ASSERT_TRUE(l.a.encrypt(as_bytes("ping"), w1));
  ASSERT_TRUE(l.b.encrypt(as_bytes("pong"), w2));
  EXPECT_NE(BytesView(w1).subspan(2).front(), 0);  // encrypted, not the plaintext
  ASSERT_EQ(l.b.decrypt(w1, used, p1), Status::ok);
  ASSERT_EQ(l.a.decrypt(w2, used, p2), Status::ok);
  EXPECT_EQ(as_string_view(p1), "ping");
  EXPECT_EQ(as_string_view(p2), "pong");
  // Reflecting a frame back to its sender fails: each direction has its own key.
  Bytes p3;
  EXPECT_EQ(l.a.decrypt(w1, used, p3), Status::failed);
}

TEST(NoiseTransport, TamperedFrameFailsAndStaysFailed) {
  Link l;
  Bytes wire, plain;
  ASSERT_TRUE(l.a.encrypt(as_bytes("first"), wire));
  size_t first_len = wire.size();
  ASSERT_TRUE(l.a.encrypt(as_bytes("second"), wire));
  wire[first_len + 5] ^= 0x10;
  size_t used = 0;
  EXPECT_EQ(l.b.decrypt(wire, used, plain), Status::failed);
  EXPECT_EQ(used, first_len);  // the good frame before the bad one is delivered
  EXPECT_EQ(as_string_view(plain), "first");
  EXPECT_EQ(l.b.error(), "noise frame failed authentication (corrupted or forged)");
  Bytes good;
  ASSERT_TRUE(l.a.encrypt(as_bytes("third"), good));
  EXPECT_EQ(l.b.decrypt(good, used, plain), Status::failed);
  EXPECT_EQ(used, 0u);
}

TEST(NoiseTransport, ReplayedFrameFails) {
  Link l;
  Bytes wire, plain;
  ASSERT_TRUE(l.a.encrypt(as_bytes("once"), wire));
  size_t used = 0;
  ASSERT_EQ(l.b.decrypt(wire, used, plain), Status::ok);
  EXPECT_EQ(l.b.decrypt(wire, used, plain), Status::failed);
}

TEST(NoiseTransport, FrameShorterThanTagFails) {
  for (uint8_t len : {uint8_t{0}, uint8_t{1}, uint8_t{15}}) {
    Link l;
    Bytes wire = {0, len};
    wire.resize(2 + len, 0);
    Bytes plain;
    size_t used = 0;
    EXPECT_EQ(l.b.decrypt(wire, used, plain), Status::failed);
    EXPECT_EQ(l.b.error(), "noise frame of " + std::to_string(len) + " bytes is shorter than its 16-byte tag");
  }
}

TEST(NoiseTransport, EmptyFrameFromPeerIsAccepted) {
  // We never send empty frames, but a peer may: 16 bytes = just the tag.
  noise::Key k1;
  k1.fill(0xa1);
  noise::CipherState c;
  c.initialize_key(k1);
  Bytes wire = {0, 16};
  wire.resize(18);
  ASSERT_TRUE(c.encrypt_with_ad({}, nullptr, 0, wire.data() + 2));
  Link l;
  Bytes plain;
  size_t used = 0;
  EXPECT_EQ(l.b.decrypt(wire, used, plain), Status::ok);
  EXPECT_EQ(used, 18u);
  EXPECT_TRUE(plain.empty());
}

TEST(NoiseTransport, NonceExhaustionGuard) {
  Link l;
  l.a.send_cipher().set_nonce(UINT64_MAX - 1);
  Bytes wire, plain;
  // Two frames would need nonces 2^64-2 and 2^64-1; the latter is reserved: refused, nothing written.
  EXPECT_FALSE(l.a.encrypt(pattern(65520), wire));
  EXPECT_TRUE(wire.empty());
  EXPECT_EQ(l.a.error(), "noise send nonce exhausted");

  Link m;
  m.a.send_cipher().set_nonce(UINT64_MAX - 1);
  m.b.recv_cipher().set_nonce(UINT64_MAX - 1);
  ASSERT_TRUE(m.a.encrypt(as_bytes("last"), wire));
  EXPECT_FALSE(m.a.encrypt(as_bytes("one more"), wire));
  size_t used = 0;
  ASSERT_EQ(m.b.decrypt(wire, used, plain), Status::ok);
  EXPECT_EQ(as_string_view(plain), "last");
  Bytes extra = {0, 16};
  extra.resize(18);
  EXPECT_EQ(m.b.decrypt(extra, used, plain), Status::failed);
  EXPECT_EQ(m.b.error(), "noise receive nonce exhausted");
}

TEST(NoiseTransport, DefaultTransportRefusesEverything) {
  NoiseTransport t;
  Bytes out, plain;
  EXPECT_TRUE(t.failed());
  EXPECT_FALSE(t.encrypt(as_bytes("x"), out));
  EXPECT_TRUE(out.empty());
  size_t used = 0;
  EXPECT_EQ(t.decrypt(Bytes{0, 16}, used, plain), Status::failed);
}

TEST(NoiseTransport, EncryptAppendsToExistingOutput) {
  Link l;
  Bytes out = {1, 2, 3};
  ASSERT_TRUE(l.a.encrypt(as_bytes("tail"), out));
  EXPECT_EQ(out.size(), 3 + NoiseTransport::encrypted_size(4));
  EXPECT_EQ(out[0], 1);
  Bytes plain;
  size_t used = 0;
  ASSERT_EQ(l.b.decrypt(BytesView(out).subspan(3), used, plain), Status::ok);
  EXPECT_EQ(as_string_view(plain), "tail");
}

}  // namespace
}  // namespace chorus::p2p
