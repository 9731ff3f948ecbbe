// NoiseHandshake: the exact transcript of an independent implementation, chunked delivery, identity checks,
// tampering, malformed payloads and the stream-muxer extension.
#include <gtest/gtest.h>

#include <random>

#include "noise/noise_handshake.hpp"
#include "noise/noise_payload.hpp"
#include "noise_test_util.hpp"
#include "wire/peer_id.hpp"

namespace chorus::p2p {
namespace {

#include "noise_vectors.inc"

using noise_test::hex;
using noise_test::identity_from_byte;
using noise_test::key_from_hex;
using State = NoiseHandshake::State;

Bytes frame(BytesView msg) {
  Bytes f{static_cast<uint8_t>(msg.size() >> 8), static_cast<uint8_t>(msg.size())};
  append(f, msg);
  return f;
}

Bytes take(NoiseHandshake &hs) {
  Bytes out;
  hs.take_output(out);
  return out;
}

// Feeds the whole buffer and expects it to be consumed completely.
State feed_all(NoiseHandshake &hs, BytesView in) {
  size_t used = 0;
  State s = hs.feed(in, used);
  if (s != State::failed) {
    EXPECT_EQ(used, in.size());
  }
  return s;
}

struct FixedPair {
  Identity initiator_id = identity_from_byte(0x11);
  Identity responder_id = identity_from_byte(0x22);
  std::unique_ptr<NoiseHandshake> initiator, responder;

  explicit FixedPair(std::vector<std::string> initiator_muxers = {},
                     std::vector<std::string> responder_muxers = {}) {
    NoiseConfig ic{.initiator = true, .identity = &initiator_id, .stream_muxers = std::move(initiator_muxers)};
    NoiseConfig rc{.initiator = false, .identity = &responder_id, .stream_muxers = std::move(responder_muxers)};
    initiator = NoiseHandshakeTestAccess::make(std::move(ic), key_from_hex(kInitiatorStaticPrivate),
                                               key_from_hex(kInitiatorEphemeralPrivate));
    responder = NoiseHandshakeTestAccess::make(std::move(rc), key_from_hex(kResponderStaticPrivate),
                                               key_from_hex(kResponderEphemeralPrivate));
  }
};

void check_reference_transcript(FixedPair &p, const char *msg1, const char *msg2, const char *msg3,
                                const char *hello, const char *world) {
  Bytes m1 = take(*p.initiator);
  EXPECT_EQ(to_hex(m1), msg1);
  ASSERT_EQ(feed_all(*p.responder, m1), State::running);
  Bytes m2 = take(*p.responder);
  EXPECT_EQ(to_hex(m2), msg2);
  ASSERT_EQ(feed_all(*p.initiator, m2), State::done) << p.initiator->error();
  Bytes m3 = take(*p.initiator);
  EXPECT_EQ(to_hex(m3), msg3);
  ASSERT_EQ(feed_all(*p.responder, m3), State::done) << p.responder->error();
  EXPECT_EQ(p.initiator->remote_peer(), p.responder_id.peer_id());
  EXPECT_EQ(p.responder->remote_peer(), p.initiator_id.peer_id());
  EXPECT_EQ(p.initiator->remote_identity_key(), p.responder_id.public_key());

  NoiseTransport ti = p.initiator->split(), tr = p.responder->split();
  Bytes out;
  ASSERT_TRUE(ti.encrypt(as_bytes("hello"), out));
  EXPECT_EQ(to_hex(out), hello);
  Bytes plain;
  size_t used = 0;
  ASSERT_EQ(tr.decrypt(out, used, plain), NoiseTransport::Status::ok);
  EXPECT_EQ(as_string_view(plain), "hello");
  out.clear();
  plain.clear();
  ASSERT_TRUE(tr.encrypt(as_bytes("world"), out));
  EXPECT_EQ(to_hex(out), world);
  ASSERT_EQ(ti.decrypt(out, used, plain), NoiseTransport::Status::ok);
  EXPECT_EQ(as_string_view(plain), "world");
}

TEST(NoiseHandshake, ReproducesReferenceTranscript) {
  FixedPair p;
  check_reference_transcript(p, kPlainMsg1, kPlainMsg2, kPlainMsg3, kPlainHelloFrame, kPlainWorldFrame);
  EXPECT_FALSE(p.initiator->selected_stream_muxer().has_value());
  EXPECT_TRUE(p.initiator->remote_stream_muxers().empty());
}

TEST(NoiseHandshake, ReproducesReferenceTranscriptWithMuxers) {
  FixedPair p({"/yamux/1.0.0", "/mplex/6.7.0"}, {"/yamux/1.0.0"});
  check_reference_transcript(p, kMuxersMsg1, kMuxersMsg2, kMuxersMsg3, kMuxersHelloFrame, kMuxersWorldFrame);
  EXPECT_EQ(p.initiator->selected_stream_muxer(), "/yamux/1.0.0");
  EXPECT_EQ(p.responder->selected_stream_muxer(), "/yamux/1.0.0");
  EXPECT_EQ(p.responder->remote_stream_muxers(), (std::vector<std::string>{"/yamux/1.0.0", "/mplex/6.7.0"}));
}

// ---------------------------------------------------------------------------------------------
// Random keys, chunked delivery

struct Pair {
  Identity a_id = Identity::generate();
  Identity b_id = Identity::generate();
  NoiseHandshake initiator;
  NoiseHandshake responder;
  explicit Pair(std::optional<PeerId> expected = std::nullopt, std::vector<std::string> im = {},
                std::vector<std::string> rm = {})
      : initiator(NoiseConfig{.initiator = true, .identity = &a_id, .stream_muxers = std::move(im),
                              .expected_remote = std::move(expected)}),
        responder(NoiseConfig{.initiator = false, .identity = &b_id, .stream_muxers = std::move(rm)}) {}
};

void expect_transport_works(NoiseTransport &send, NoiseTransport &recv, size_t size) {
  Bytes msg(size);
  for (size_t i = 0; i < size; ++i) msg[i] = static_cast<uint8_t>(i * 7 + 3);
  Bytes wire, plain;
  ASSERT_TRUE(send.encrypt(msg, wire));
  size_t used = 0;
  ASSERT_NE(recv.decrypt(wire, used, plain), NoiseTransport::Status::failed) << recv.error();
  EXPECT_EQ(used, wire.size());
  EXPECT_EQ(plain, msg);
}

TEST(NoiseHandshake, CompletesWithAnyChunking) {
  for (size_t chunk : {size_t{1}, size_t{2}, size_t{3}, size_t{5}, size_t{17}, size_t{64}, size_t{99},
                       size_t{1000}, size_t{1} << 20}) {
    SCOPED_TRACE("chunk " + std::to_string(chunk));
    Pair p;
    noise_test::pump(p.initiator, p.responder, chunk);
    ASSERT_EQ(p.initiator.state(), State::done) << p.initiator.error();
    ASSERT_EQ(p.responder.state(), State::done) << p.responder.error();
    EXPECT_EQ(p.initiator.remote_peer(), p.b_id.peer_id());
    EXPECT_EQ(p.responder.remote_peer(), p.a_id.peer_id());
    NoiseTransport ti = p.initiator.split(), tr = p.responder.split();
    expect_transport_works(ti, tr, 1000);
    expect_transport_works(tr, ti, 1000);
  }
}

TEST(NoiseHandshake, LeavesTransportBytesAfterLastMessageToCaller) {
  Pair p;
  Bytes m1 = take(p.initiator);
  ASSERT_EQ(feed_all(p.responder, m1), State::running);
  ASSERT_EQ(feed_all(p.initiator, take(p.responder)), State::done);
  NoiseTransport ti = p.initiator.split();
  Bytes wire = take(p.initiator);
  size_t msg3_len = wire.size();
  ASSERT_TRUE(ti.encrypt(as_bytes("early data"), wire));  // written right behind msg3, as go/js may do
  size_t used = 0;
  ASSERT_EQ(p.responder.feed(wire, used), State::done);
  EXPECT_EQ(used, msg3_len);
  NoiseTransport tr = p.responder.split();
  Bytes plain;
  ASSERT_EQ(tr.decrypt(BytesView(wire).subspan(used), used, plain), NoiseTransport::Status::ok);
  EXPECT_EQ(as_string_view(plain), "early data");
}

TEST(NoiseHandshake, PartialFrameConsumesNothing) {
  Pair p;
  Bytes m1 = take(p.initiator);
  size_t used = 99;
  EXPECT_EQ(p.responder.feed(BytesView(m1).first(1), used), State::running);
  EXPECT_EQ(used, 0u);
  EXPECT_EQ(p.responder.feed(BytesView(m1).first(m1.size() - 1), used), State::running);
  EXPECT_EQ(used, 0u);
  EXPECT_FALSE(p.responder.has_output());
  EXPECT_EQ(p.responder.feed(m1, used), State::running);
  EXPECT_EQ(used, m1.size());
  EXPECT_TRUE(p.responder.has_output());
}

TEST(NoiseHandshake, AfterDoneFeedConsumesNothingAndSplitWorksOnce) {
  Pair p;
  EXPECT_TRUE(p.initiator.split().failed());  // not done yet
  noise_test::pump(p.initiator, p.responder, 1 << 16);
  ASSERT_EQ(p.responder.state(), State::done);
  size_t used = 5;
  const uint8_t junk[4] = {0, 2, 1, 2};
  EXPECT_EQ(p.responder.feed(junk, used), State::done);
  EXPECT_EQ(used, 0u);
  NoiseTransport t = p.responder.split();
  EXPECT_FALSE(t.failed());
  EXPECT_TRUE(p.responder.split().failed());
}

TEST(NoiseHandshake, MissingIdentityFails) {
  NoiseHandshake hs(NoiseConfig{.initiator = true});
  EXPECT_EQ(hs.state(), State::failed);
  EXPECT_EQ(hs.failure(), NoiseHandshake::Failure::invalid);
  EXPECT_FALSE(hs.has_output());
  EXPECT_FALSE(hs.error().empty());
}

// ---------------------------------------------------------------------------------------------
// Expected peer id

TEST(NoiseHandshake, ExpectedPeerIdMatches) {
  Identity a_id = Identity::generate(), b_id = Identity::generate();
  NoiseHandshake i(NoiseConfig{.initiator = true, .identity = &a_id, .expected_remote = b_id.peer_id()});
  NoiseHandshake r(NoiseConfig{.initiator = false, .identity = &b_id, .expected_remote = a_id.peer_id()});
  noise_test::pump(i, r, 7);
  EXPECT_EQ(i.state(), State::done) << i.error();
  EXPECT_EQ(r.state(), State::done) << r.error();
}

TEST(NoiseHandshake, WrongExpectedPeerIdFailsInitiatorBeforeMsg3) {
  Identity other = Identity::generate();
  Pair p(other.peer_id());
  ASSERT_EQ(feed_all(p.responder, take(p.initiator)), State::running);
  EXPECT_EQ(feed_all(p.initiator, take(p.responder)), State::failed);
  EXPECT_EQ(p.initiator.failure(), NoiseHandshake::Failure::peer_id_mismatch);
  EXPECT_EQ(p.initiator.error(), "peer id mismatch: expected " + other.peer_id().to_string() + ", got " +
                                     p.b_id.peer_id().to_string());
  EXPECT_FALSE(p.initiator.has_output());  // msg3 (our identity) is never sent
  EXPECT_TRUE(p.initiator.split().failed());
  EXPECT_EQ(p.responder.state(), State::running);
}

TEST(NoiseHandshake, WrongExpectedPeerIdFailsResponder) {
  Identity a_id = Identity::generate(), b_id = Identity::generate(), other = Identity::generate();
  NoiseHandshake i(NoiseConfig{.initiator = true, .identity = &a_id});
  NoiseHandshake r(NoiseConfig{.initiator = false, .identity = &b_id, .expected_remote = other.peer_id()});
  noise_test::pump(i, r, 1 << 16);
  EXPECT_EQ(i.state(), State::done);
  EXPECT_EQ(r.state(), State::failed);
  EXPECT_EQ(r.error().rfind("peer id mismatch: expected ", 0), 0u) << r.error();
}

// ---------------------------------------------------------------------------------------------
// Tampering: every byte of msg2 and msg3

TEST(NoiseHandshake, TamperedMsg2FailsAtEveryPosition) {
  Bytes m1, m2;
  {
    FixedPair p;
    m1 = take(*p.initiator);
    feed_all(*p.responder, m1);
    m2 = take(*p.responder);
  }
  for (size_t i = 0; i < m2.size(); ++i) {
    for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}}) {
      FixedPair p;
      take(*p.initiator);
      Bytes bad = m2;
      bad[i] ^= mask;
      size_t used = 0;
      State s = p.initiator->feed(bad, used);
      size_t old_len = size_t{m2[0]} << 8 | m2[1], new_len = size_t{bad[0]} << 8 | bad[1];
      if (new_len > old_len) {
        EXPECT_EQ(s, State::running) << "byte " << i;  // a longer frame: waits for more bytes
        EXPECT_EQ(used, 0u);
      } else {
        EXPECT_EQ(s, State::failed) << "byte " << i;
      }
      if (s == State::failed) {
        EXPECT_FALSE(p.initiator->error().empty());
        EXPECT_FALSE(p.initiator->has_output());
      }
    }
  }
}

TEST(NoiseHandshake, TamperedMsg3FailsAtEveryPosition) {
  Bytes m1, m2, m3;
  {
    FixedPair p;
    m1 = take(*p.initiator);
    feed_all(*p.responder, m1);
    m2 = take(*p.responder);
    feed_all(*p.initiator, m2);
    m3 = take(*p.initiator);
  }
  for (size_t i = 2; i < m3.size(); ++i) {
    FixedPair p;
    ASSERT_EQ(feed_all(*p.responder, m1), State::running);
    Bytes bad = m3;
    bad[i] ^= 0x01;
    EXPECT_EQ(feed_all(*p.responder, bad), State::failed) << "byte " << i;
    EXPECT_TRUE(p.responder->split().failed());
  }
  // A length prefix one smaller cuts the tag: fails. One larger: waits for a byte that never comes.
  FixedPair p;
  feed_all(*p.responder, m1);
  Bytes shorter = m3;
  shorter[1] -= 1;
  size_t used = 0;
  EXPECT_EQ(p.responder->feed(shorter, used), State::failed);
  FixedPair q;
  feed_all(*q.responder, m1);
  Bytes longer = m3;
  longer[1] += 1;
  EXPECT_EQ(q.responder->feed(longer, used), State::running);
  EXPECT_EQ(used, 0u);
}

// ---------------------------------------------------------------------------------------------
// A hand-driven peer built from SymmetricState, to send payloads NoiseHandshake never would.

struct ManualPeer {
  noise::SymmetricState sym;
  noise::Key s_priv, s_pub, e_priv, e_pub, re{};

  ManualPeer() {
    noise::generate_keypair(s_priv, s_pub);
    noise::generate_keypair(e_priv, e_pub);
    sym.initialize(kNoiseProtocolName);
    sym.mix_hash({});
  }
  void mix_dh(const noise::Key &priv, const noise::Key &pub) {
    noise::Key shared;
    ASSERT_TRUE(noise::dh(priv, pub, shared));
    sym.mix_key(shared);
  }

  // Responder: msg2 for the initiator's framed msg1.
  Bytes msg2(BytesView msg1_frame, BytesView payload) {
    std::copy_n(msg1_frame.begin() + 2, 32, re.begin());
    sym.mix_hash(re);
    sym.mix_hash(msg1_frame.subspan(34));
    Bytes m(e_pub.begin(), e_pub.end());
    sym.mix_hash(e_pub);
    mix_dh(e_priv, re);
    sym.encrypt_and_hash(s_pub, m);
    mix_dh(s_priv, re);
    sym.encrypt_and_hash(payload, m);
    return frame(m);
  }

  // Initiator: msg1 with an optional (plaintext) payload.
  Bytes msg1(BytesView extra = {}) {
    Bytes m(e_pub.begin(), e_pub.end());
    sym.mix_hash(e_pub);
    sym.encrypt_and_hash(extra, m);
    return frame(m);
  }
  // Initiator: processes the responder's framed msg2 and builds msg3.
  Bytes msg3(BytesView msg2_frame, BytesView payload) {
    BytesView m2 = msg2_frame.subspan(2);
    std::copy_n(m2.begin(), 32, re.begin());
    sym.mix_hash(re);
    mix_dh(e_priv, re);
    Bytes rs_bytes, remote_payload;
    EXPECT_TRUE(sym.decrypt_and_hash(m2.subspan(32, 48), rs_bytes));
    noise::Key rs;
    std::copy_n(rs_bytes.begin(), 32, rs.begin());
    mix_dh(e_priv, rs);
    EXPECT_TRUE(sym.decrypt_and_hash(m2.subspan(80), remote_payload));
    Bytes m;
    sym.encrypt_and_hash(s_pub, m);
    mix_dh(s_priv, re);
    sym.encrypt_and_hash(payload, m);
    return frame(m);
  }
};

Bytes signature(const Identity &id, const noise::Key &static_pub) {
  auto sig = id.sign(noise::static_key_signature_message(static_pub));
  return Bytes(sig.begin(), sig.end());
}

Bytes payload(BytesView identity_key, BytesView sig, std::vector<std::string> muxers = {}) {
  noise::HandshakePayload p{to_bytes(identity_key), to_bytes(sig), std::move(muxers)};
  Bytes out;
  noise::encode_payload(p, out);
  return out;
}

// Runs our initiator against a manual responder that sends `payload_bytes` (built from its keys).
std::string initiator_error_for(const std::function<Bytes(const ManualPeer &)> &make_payload) {
  Identity id = Identity::generate();
  NoiseHandshake i(NoiseConfig{.initiator = true, .identity = &id});
  ManualPeer r;
  Bytes m2 = r.msg2(take(i), make_payload(r));
  State s = feed_all(i, m2);
  EXPECT_EQ(s, State::failed);
  EXPECT_FALSE(i.has_output());
  return i.error();
}

TEST(NoiseHandshake, ManualResponderWithValidPayloadSucceeds) {
  // Sanity check of the manual peer, so the failures below are caused by the payload alone.
  Identity rid = Identity::generate(), iid = Identity::generate();
  NoiseHandshake i(NoiseConfig{.initiator = true, .identity = &iid});
  ManualPeer r;
  Bytes m2 = r.msg2(take(i), payload(rid.public_key_protobuf(), signature(rid, r.s_pub)));
  ASSERT_EQ(feed_all(i, m2), State::done) << i.error();
  EXPECT_EQ(i.remote_peer(), rid.peer_id());
}

TEST(NoiseHandshake, BadSignatureFails) {
  Identity rid = Identity::generate();
  EXPECT_EQ(initiator_error_for([&](const ManualPeer &r) {
              Bytes sig = signature(rid, r.s_pub);
              sig[10] ^= 0x04;
              return payload(rid.public_key_protobuf(), sig);
            }),
            "bad identity signature");
  // A valid signature, but over a different X25519 key than the one sent in this handshake.
  EXPECT_EQ(initiator_error_for([&](const ManualPeer &r) {
              return payload(rid.public_key_protobuf(), signature(rid, r.e_pub));
            }),
            "bad identity signature");
  // Signed by another identity than the one presented.
  Identity other = Identity::generate();
  EXPECT_EQ(initiator_error_for([&](const ManualPeer &r) {
              return payload(rid.public_key_protobuf(), signature(other, r.s_pub));
            }),
            "bad identity signature");
  EXPECT_EQ(initiator_error_for([&](const ManualPeer &r) {
              Bytes sig = signature(rid, r.s_pub);
              sig.pop_back();
              return payload(rid.public_key_protobuf(), sig);
            }),
            "bad identity signature (63 bytes, 64 expected)");
  EXPECT_EQ(initiator_error_for([&](const ManualPeer &) { return payload(rid.public_key_protobuf(), {}); }),
            "bad identity signature (0 bytes, 64 expected)");
}

TEST(NoiseHandshake, BadSignatureInMsg3FailsResponder) {
  Identity rid = Identity::generate(), iid = Identity::generate();
  NoiseHandshake r(NoiseConfig{.initiator = false, .identity = &rid});
  ManualPeer i;
  ASSERT_EQ(feed_all(r, i.msg1()), State::running);
  Bytes sig = signature(iid, i.s_pub);
  sig[63] ^= 0x01;
  Bytes m3 = i.msg3(take(r), payload(iid.public_key_protobuf(), sig));
  EXPECT_EQ(feed_all(r, m3), State::failed);
  EXPECT_EQ(r.error(), "bad identity signature");
}

TEST(NoiseHandshake, NonEd25519IdentityFails) {
  // RSA (type 0) and Secp256k1 (type 2) PublicKey protobufs; their signatures cannot be checked.
  Bytes rsa = {0x08, 0x00, 0x12, 0x04, 1, 2, 3, 4};
  Bytes secp = {0x08, 0x02, 0x12, 0x21};
  secp.resize(secp.size() + 33, 0x02);
  std::string e = initiator_error_for([&](const ManualPeer &) { return payload(rsa, Bytes(64, 1)); });
  EXPECT_NE(e.find("unsupported identity key type RSA"), std::string::npos) << e;
  e = initiator_error_for([&](const ManualPeer &) { return payload(secp, Bytes(64, 1)); });
  EXPECT_NE(e.find("unsupported identity key type Secp256k1"), std::string::npos) << e;
}

TEST(NoiseHandshake, MalformedPayloadsFail) {
  Identity rid = Identity::generate();
  std::string e = initiator_error_for([&](const ManualPeer &) { return Bytes{}; });
  EXPECT_EQ(e, "noise payload carries no identity key");
  e = initiator_error_for([&](const ManualPeer &) { return Bytes{0xff, 0xff, 0xff}; });
  EXPECT_EQ(e.rfind("noise payload: ", 0), 0u) << e;
  e = initiator_error_for([&](const ManualPeer &) { return Bytes{0x0a, 0x05, 0x01}; });  // runs past the end
  EXPECT_EQ(e.rfind("noise payload: ", 0), 0u) << e;
  e = initiator_error_for([&](const ManualPeer &) { return Bytes{0x08, 0x01}; });  // identity_key as varint
  EXPECT_EQ(e, "noise payload: field 1 has the wrong wire type");
  e = initiator_error_for([&](const ManualPeer &r) {
    Bytes key = rid.public_key_protobuf();
    key.push_back(0);  // not the canonical PublicKey encoding
    return payload(key, signature(rid, r.s_pub));
  });
  EXPECT_EQ(e.rfind("noise payload: bad identity key", 0), 0u) << e;
  e = initiator_error_for([&](const ManualPeer &r) {
    Bytes p = payload(rid.public_key_protobuf(), signature(rid, r.s_pub));
    Bytes ext = {0x22, 0x03, 0x12, 0x05, 'x'};  // extensions whose stream_muxers entry is truncated
    append(p, ext);
    return p;
  });
  EXPECT_EQ(e.rfind("noise extensions: ", 0), 0u) << e;
}

TEST(NoiseHandshake, UnknownPayloadFieldsAreSkipped) {
  Identity rid = Identity::generate(), iid = Identity::generate();
  NoiseHandshake i(NoiseConfig{.initiator = true, .identity = &iid});
  ManualPeer r;
  Bytes p = payload(rid.public_key_protobuf(), signature(rid, r.s_pub));
  Bytes extra = {0x18, 0x07, 0x2a, 0x02, 'h', 'i', 0x22, 0x04, 0x0a, 0x02, 0xaa, 0xbb};  // f3, f5, certhashes
  append(p, extra);
  ASSERT_EQ(feed_all(i, r.msg2(take(i), p)), State::done) << i.error();
  EXPECT_TRUE(i.remote_stream_muxers().empty());
}

TEST(NoiseHandshake, ToleratesPayloadInMsg1) {
  Identity rid = Identity::generate(), iid = Identity::generate();
  NoiseHandshake r(NoiseConfig{.initiator = false, .identity = &rid});
  ManualPeer i;
  ASSERT_EQ(feed_all(r, i.msg1(as_bytes("early payload from an old go-libp2p"))), State::running);
  Bytes m3 = i.msg3(take(r), payload(iid.public_key_protobuf(), signature(iid, i.s_pub)));
  ASSERT_EQ(feed_all(r, m3), State::done) << r.error();
  EXPECT_EQ(r.remote_peer(), iid.peer_id());
}

// ---------------------------------------------------------------------------------------------
// Sizes

TEST(NoiseHandshake, OversizedOwnPayloadFailsBeforeSending) {
  Identity id = Identity::generate();
  std::vector<std::string> many(700, std::string(100, 'm'));  // ~71 KB of extensions
  NoiseHandshake i(NoiseConfig{.initiator = true, .identity = &id, .stream_muxers = many});
  EXPECT_EQ(i.state(), State::failed);
  EXPECT_EQ(i.error().rfind("handshake message too large", 0), 0u) << i.error();
  EXPECT_FALSE(i.has_output());
  NoiseHandshake r(NoiseConfig{.initiator = false, .identity = &id, .stream_muxers = many});
  EXPECT_EQ(r.state(), State::failed);
}

TEST(NoiseHandshake, LargestMsg1FrameIsAccepted) {
  Identity rid = Identity::generate(), iid = Identity::generate();
  NoiseHandshake r(NoiseConfig{.initiator = false, .identity = &rid});
  ManualPeer i;
  Bytes big(noise::kMaxMessage - 32, 'x');
  Bytes m1 = i.msg1(big);
  ASSERT_EQ(m1.size(), 2 + noise::kMaxMessage);
  ASSERT_EQ(feed_all(r, m1), State::running) << r.error();
  Bytes m3 = i.msg3(take(r), payload(iid.public_key_protobuf(), signature(iid, i.s_pub)));
  EXPECT_EQ(feed_all(r, m3), State::done) << r.error();
}

TEST(NoiseHandshake, TruncatedMessagesFail) {
  Identity id = Identity::generate();
  {
    NoiseHandshake r(NoiseConfig{.initiator = false, .identity = &id});
    EXPECT_EQ(feed_all(r, frame(Bytes(31, 9))), State::failed);
    EXPECT_EQ(r.error(), "noise message 1 too short (31 bytes, at least 32 expected)");
  }
  {
    NoiseHandshake r(NoiseConfig{.initiator = false, .identity = &id});
    EXPECT_EQ(feed_all(r, frame({})), State::failed);
  }
  {
    NoiseHandshake i(NoiseConfig{.initiator = true, .identity = &id});
    EXPECT_EQ(feed_all(i, frame(Bytes(95, 9))), State::failed);
    EXPECT_EQ(i.error(), "noise message 2 too short (95 bytes, at least 96 expected)");
  }
  {
    Pair p;
    feed_all(p.responder, take(p.initiator));
    EXPECT_EQ(feed_all(p.responder, frame(Bytes(63, 9))), State::failed);
    EXPECT_EQ(p.responder.error(), "noise message 3 too short (63 bytes, at least 64 expected)");
  }
  {
    // Right length, garbage content: authentication fails.
    NoiseHandshake i(NoiseConfig{.initiator = true, .identity = &id});
    Bytes m2(200, 0x5a);
    EXPECT_EQ(feed_all(i, frame(m2)), State::failed);
    EXPECT_EQ(i.error(), "noise message 2: the responder's static key failed authentication");
  }
}

TEST(NoiseHandshake, LowOrderEphemeralKeyFails) {
  Identity id = Identity::generate();
  NoiseHandshake r(NoiseConfig{.initiator = false, .identity = &id});
  EXPECT_EQ(feed_all(r, frame(Bytes(32, 0))), State::failed);
  EXPECT_NE(r.error().find("low-order"), std::string::npos) << r.error();
  EXPECT_FALSE(r.has_output());
}

// ---------------------------------------------------------------------------------------------
// Stream muxer extension

TEST(NoiseHandshake, StreamMuxersExchangedAndInitiatorPreferenceWins) {
  Pair p(std::nullopt, {"/yamux/1.0.0", "/mplex/6.7.0"}, {"/mplex/6.7.0", "/yamux/1.0.0"});
  noise_test::pump(p.initiator, p.responder, 3);
  ASSERT_EQ(p.initiator.state(), State::done) << p.initiator.error();
  ASSERT_EQ(p.responder.state(), State::done) << p.responder.error();
  EXPECT_EQ(p.initiator.remote_stream_muxers(), (std::vector<std::string>{"/mplex/6.7.0", "/yamux/1.0.0"}));
  EXPECT_EQ(p.responder.remote_stream_muxers(), (std::vector<std::string>{"/yamux/1.0.0", "/mplex/6.7.0"}));
  EXPECT_EQ(p.initiator.selected_stream_muxer(), "/yamux/1.0.0");
  EXPECT_EQ(p.responder.selected_stream_muxer(), "/yamux/1.0.0");
}

TEST(NoiseHandshake, StreamMuxersOnOneSideOnlyMeansMultistreamFallback) {
  Pair p(std::nullopt, {}, {"/yamux/1.0.0"});  // like js talking to us when we send none
  noise_test::pump(p.initiator, p.responder, 1 << 16);
  ASSERT_EQ(p.initiator.state(), State::done);
  ASSERT_EQ(p.responder.state(), State::done);
  EXPECT_EQ(p.initiator.remote_stream_muxers(), std::vector<std::string>{"/yamux/1.0.0"});
  EXPECT_TRUE(p.responder.remote_stream_muxers().empty());
  EXPECT_FALSE(p.initiator.selected_stream_muxer().has_value());
  EXPECT_FALSE(p.responder.selected_stream_muxer().has_value());
}

TEST(NoiseHandshake, StreamMuxersWithoutOverlapFail) {
  Pair p(std::nullopt, {"/mplex/6.7.0"}, {"/yamux/1.0.0"});
  noise_test::pump(p.initiator, p.responder, 1 << 16);
  EXPECT_EQ(p.initiator.state(), State::failed);
  EXPECT_EQ(p.initiator.error(), "no common stream muxer in the noise extensions");
  EXPECT_EQ(p.responder.state(), State::running);  // never got msg3
}

}  // namespace
}  // namespace chorus::p2p
