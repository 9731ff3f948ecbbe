// libFuzzer target for the Noise layer. The first input byte picks what the rest is:
//   0: raw bytes from the network to a responder (msg1, msg3 frames)
//   1: raw bytes to an initiator after it queued msg1 (msg2 frames)
//   2: the plaintext payload of an otherwise valid msg2 (reaches payload parsing and identity checks)
//   3: the plaintext payload of an otherwise valid msg3
//   4: raw frames to NoiseTransport::decrypt
//   5: plaintext through encrypt -> decrypt (must round-trip exactly)
// The second byte sets the chunk size the input is delivered in. Nothing here may crash or leak.
#include <sodium.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "wire/identity.hpp"
#include "noise/noise_handshake.hpp"
#include "noise/noise_payload.hpp"

namespace chorus::p2p {

struct NoiseHandshakeTestAccess {
  static std::unique_ptr<NoiseHandshake> make(NoiseConfig config, const noise::Key &s, const noise::Key &e) {
    return std::unique_ptr<NoiseHandshake>(new NoiseHandshake(std::move(config), &s, &e));
  }
};

}  // namespace chorus::p2p

using namespace chorus::p2p;

namespace {

noise::Key fixed_key(uint8_t b) {
  noise::Key k;
  k.fill(b);
  return k;
}

const Identity &our_identity() {
  static const Identity id = [] {
    uint8_t seed[32];
    std::fill(std::begin(seed), std::end(seed), 0x11);
    return Identity::from_seed(seed);
  }();
  return id;
}

std::unique_ptr<NoiseHandshake> make(bool initiator) {
  NoiseConfig c;
  c.initiator = initiator;
  c.identity = &our_identity();
  c.stream_muxers = {"/yamux/1.0.0"};
  return NoiseHandshakeTestAccess::make(std::move(c), fixed_key(0x31), fixed_key(0x32));
}

Bytes frame(BytesView m) {
  Bytes f{static_cast<uint8_t>(m.size() >> 8), static_cast<uint8_t>(m.size())};
  append(f, m);
  return f;
}

// Delivers `in` in chunks, keeping unconsumed bytes like a socket reader would.
void deliver(NoiseHandshake &hs, BytesView in, size_t chunk) {
  Bytes buffer;
  size_t pos = 0;
  while (pos < in.size() && hs.state() == NoiseHandshake::State::running) {
    size_t n = std::min(chunk, in.size() - pos);
    append(buffer, in.subspan(pos, n));
    pos += n;
    size_t used = 0;
    hs.feed(buffer, used);
    if (used > buffer.size()) abort();
    buffer.erase(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(used));
  }
  if (hs.state() == NoiseHandshake::State::failed && hs.error().empty()) abort();
  if (hs.state() == NoiseHandshake::State::done) {
    NoiseTransport t = hs.split();
    if (t.failed()) abort();
  }
}

// The peer side built from SymmetricState, so the fuzzer controls a payload inside valid encryption.
struct ManualPeer {
  noise::SymmetricState sym;
  noise::Key s_priv = fixed_key(0x41), s_pub, e_priv = fixed_key(0x42), e_pub, re;
  ManualPeer() {
    crypto_scalarmult_curve25519_base(s_pub.data(), s_priv.data());
    crypto_scalarmult_curve25519_base(e_pub.data(), e_priv.data());
    sym.initialize(kNoiseProtocolName);
    sym.mix_hash({});
  }
  void mix_dh(const noise::Key &priv, const noise::Key &pub) {
    noise::Key shared;
    if (noise::dh(priv, pub, shared)) sym.mix_key(shared);
  }
};

void fuzz_msg2_payload(BytesView payload, size_t chunk) {
  auto hs = make(true);
  Bytes m1;
  hs->take_output(m1);
  ManualPeer r;
  std::copy_n(m1.begin() + 2, 32, r.re.begin());
  r.sym.mix_hash(r.re);
  r.sym.mix_hash({});
  Bytes m(r.e_pub.begin(), r.e_pub.end());
  r.sym.mix_hash(r.e_pub);
  r.mix_dh(r.e_priv, r.re);
  r.sym.encrypt_and_hash(r.s_pub, m);
  r.mix_dh(r.s_priv, r.re);
  r.sym.encrypt_and_hash(payload.first(std::min(payload.size(), size_t{65535 - 96})), m);
  deliver(*hs, frame(m), chunk);
}

void fuzz_msg3_payload(BytesView payload, size_t chunk) {
  auto hs = make(false);
  ManualPeer i;
  Bytes m1(i.e_pub.begin(), i.e_pub.end());
  i.sym.mix_hash(i.e_pub);
  i.sym.mix_hash({});
  deliver(*hs, frame(m1), 1 << 16);
  Bytes m2f;
  hs->take_output(m2f);
  if (hs->state() != NoiseHandshake::State::running || m2f.size() < 2 + 96) abort();
  BytesView m2 = BytesView(m2f).subspan(2);
  std::copy_n(m2.begin(), 32, i.re.begin());
  i.sym.mix_hash(i.re);
  i.mix_dh(i.e_priv, i.re);
  Bytes rs_bytes, ignored;
  if (!i.sym.decrypt_and_hash(m2.subspan(32, 48), rs_bytes)) abort();
  noise::Key rs;
  std::copy_n(rs_bytes.begin(), 32, rs.begin());
  i.mix_dh(i.e_priv, rs);
  if (!i.sym.decrypt_and_hash(m2.subspan(80), ignored)) abort();
  Bytes m3;
  i.sym.encrypt_and_hash(i.s_pub, m3);
  i.mix_dh(i.s_priv, i.re);
  i.sym.encrypt_and_hash(payload.first(std::min(payload.size(), size_t{65535 - 64})), m3);
  deliver(*hs, frame(m3), chunk);
}

NoiseTransport transport(uint8_t send_key, uint8_t recv_key) {
  noise::CipherState s, r;
  s.initialize_key(fixed_key(send_key));
  r.initialize_key(fixed_key(recv_key));
  return NoiseTransport(std::move(s), std::move(r));
}

void fuzz_decrypt(BytesView in, size_t chunk) {
  NoiseTransport t = transport(1, 2);
  Bytes buffer, plain;
  size_t pos = 0;
  while (pos < in.size()) {
    size_t n = std::min(chunk, in.size() - pos);
    append(buffer, in.subspan(pos, n));
    pos += n;
    size_t used = 0;
    if (t.decrypt(buffer, used, plain) == NoiseTransport::Status::failed) {
      if (t.error().empty()) abort();
      break;
    }
    if (used > buffer.size()) abort();
    buffer.erase(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(used));
  }
}

void fuzz_round_trip(BytesView plaintext, size_t chunk) {
  NoiseTransport a = transport(1, 2), b = transport(2, 1);
  Bytes wire;
  // Repeat the input so multi-frame messages get exercised without huge inputs.
  size_t repeat = plaintext.empty() ? 1 : std::max<size_t>(1, 70000 / plaintext.size() / 8);
  Bytes msg;
  for (size_t i = 0; i < repeat; ++i) append(msg, plaintext);
  if (!a.encrypt(msg, wire)) abort();
  if (wire.size() != NoiseTransport::encrypted_size(msg.size())) abort();
  Bytes buffer, plain;
  size_t pos = 0;
  while (pos < wire.size()) {
    size_t n = std::min(chunk * 97, wire.size() - pos);
    append(buffer, BytesView(wire).subspan(pos, n));
    pos += n;
    size_t used = 0;
    if (b.decrypt(buffer, used, plain) == NoiseTransport::Status::failed) abort();
    buffer.erase(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(used));
  }
  if (!buffer.empty() || plain != msg) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const bool sodium_ready = sodium_init() >= 0;
  if (!sodium_ready || size < 2) return 0;
  uint8_t mode = data[0] % 6;
  size_t chunk = size_t{data[1]} == 0 ? size_t{1} << 16 : size_t{data[1]};
  BytesView rest(data + 2, size - 2);
  switch (mode) {
    case 0: deliver(*make(false), rest, chunk); break;
    case 1: {
      auto hs = make(true);
      Bytes m1;
      hs->take_output(m1);
      deliver(*hs, rest, chunk);
      break;
    }
    case 2: fuzz_msg2_payload(rest, chunk); break;
    case 3: fuzz_msg3_payload(rest, chunk); break;
    case 4: fuzz_decrypt(rest, chunk); break;
    case 5: fuzz_round_trip(rest, chunk); break;
  }
  return 0;
}
