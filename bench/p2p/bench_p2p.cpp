// Micro-benchmarks of the p2p plugin's hot paths, each layer on its own, in process (no sockets):
//
//   BM_NoiseEncryptDecrypt   64 KiB through NoiseTransport::encrypt on one side and decrypt on the other
//                            (two frames: 65024 + 512 bytes), keys from a real handshake
//   BM_NoiseEncrypt          the same, encrypt only (one direction of a connection)
//   BM_NoiseSealFrame        one ChaCha20-Poly1305 frame of N plaintext bytes: 65024 (what we send) against
//                            65519 (the most a frame holds), the choice behind kSendFramePlaintext
//   BM_NoiseHandshakeXX      a full Noise XX handshake, initiator and responder in this thread: three
//                            messages; per side 2 X25519 key generations (static and ephemeral) and 3 DHs,
//                            one Ed25519 signature (in the constructor) and one verification; then split()
//   BM_YamuxFeed             two yamux sessions back to back: the client writes 64 KiB on one stream, the
//                            server feeds the frames, consumes them and returns its window updates
//   BM_MultistreamNegotiate  multistream-select 1.0, initiator and responder, one protocol agreed
//   BM_Varint{Read,Write}    multiformats uvarints of mixed lengths (1..9 bytes)
//   BM_MultiaddrParse        text -> binary for /ip4/.../tcp/.../p2p/<id> and /ip6/.../tcp/...
//   BM_MultiaddrToString     binary -> text for the same addresses
//
// Bytes/s counters are payload bytes (the 64 KiB), not wire bytes.
#include <benchmark/benchmark.h>
#include <sodium.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "wire/bytes.hpp"
#include "wire/identity.hpp"
#include "wire/multiaddr.hpp"
#include "wire/multistream.hpp"
#include "noise/noise_handshake.hpp"
#include "noise/noise_transport.hpp"
#include "yamux/session.hpp"
#include "wire/varint.hpp"

namespace {

using namespace chorus::p2p;

constexpr size_t k64KiB = 64 * 1024;

[[noreturn]] void die(const std::string &why) {
  std::fprintf(stderr, "bench_p2p: %s\n", why.c_str());
  std::abort();
}

const Identity &identity_a() {
  static const Identity id = [] {
    uint8_t seed[32];
    for (int i = 0; i < 32; ++i) seed[i] = 0x11;
    return Identity::from_seed(seed);
  }();
  return id;
}

const Identity &identity_b() {
  static const Identity id = [] {
    uint8_t seed[32];
    for (int i = 0; i < 32; ++i) seed[i] = 0x22;
    return Identity::from_seed(seed);
  }();
  return id;
}

// Runs a handshake between two fresh NoiseHandshakes to completion; false if either failed.
bool run_handshake(NoiseHandshake &initiator, NoiseHandshake &responder, Bytes &wire) {
  NoiseHandshake *from = &initiator, *to = &responder;
  for (int turn = 0; turn < 8; ++turn) {  // XX is three messages; the bound only stops a broken peer
    wire.clear();
    from->take_output(wire);
    size_t used = 0;
    if (!wire.empty() && to->feed(wire, used) == NoiseHandshake::State::failed) return false;
    if (initiator.state() == NoiseHandshake::State::done && responder.state() == NoiseHandshake::State::done)
      return true;
    std::swap(from, to);
  }
  return false;
}

struct TransportPair {
  NoiseTransport initiator;
  NoiseTransport responder;
};

TransportPair handshaken_pair() {
  NoiseHandshake i(NoiseConfig{.initiator = true, .identity = &identity_a(), .stream_muxers = {},
                               .expected_remote = identity_b().peer_id()});
  NoiseHandshake r(NoiseConfig{.initiator = false, .identity = &identity_b(), .stream_muxers = {},
                               .expected_remote = std::nullopt});
  Bytes wire;
  if (!run_handshake(i, r, wire)) die("handshake failed: " + i.error() + r.error());
  return TransportPair{i.split(), r.split()};
}

void BM_NoiseEncryptDecrypt(benchmark::State &state) {
  TransportPair p = handshaken_pair();
  const Bytes plain(static_cast<size_t>(state.range(0)), 0x5a);
  Bytes wire, out;
  wire.reserve(NoiseTransport::encrypted_size(plain.size()));
  out.reserve(plain.size());
  for (auto _ : state) {
    wire.clear();
    out.clear();
    if (!p.initiator.encrypt(plain, wire)) die("encrypt failed");
    size_t used = 0;
    if (p.responder.decrypt(wire, used, out) != NoiseTransport::Status::ok || used != wire.size() ||
        out.size() != plain.size())
      die("decrypt failed: " + p.responder.error());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_NoiseEncryptDecrypt)->Arg(k64KiB);

void BM_NoiseEncrypt(benchmark::State &state) {
  TransportPair p = handshaken_pair();
  const Bytes plain(static_cast<size_t>(state.range(0)), 0x5a);
  Bytes wire;
  wire.reserve(NoiseTransport::encrypted_size(plain.size()));
  for (auto _ : state) {
    wire.clear();
    if (!p.initiator.encrypt(plain, wire)) die("encrypt failed");
    benchmark::DoNotOptimize(wire.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_NoiseEncrypt)->Arg(k64KiB);

void BM_NoiseSealFrame(benchmark::State &state) {
  noise::Key key;
  key.fill(0x5a);
  noise::CipherState cipher;
  cipher.initialize_key(key);
  const Bytes plain(static_cast<size_t>(state.range(0)), 0x5a);
  Bytes sealed(plain.size() + noise::kTagLen);
  for (auto _ : state) {
    if (!cipher.encrypt_with_ad({}, plain.data(), plain.size(), sealed.data())) die("encrypt failed");
    benchmark::DoNotOptimize(sealed.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_NoiseSealFrame)->Arg(NoiseTransport::kSendFramePlaintext)->Arg(NoiseTransport::kMaxFramePlaintext);

void BM_NoiseHandshakeXX(benchmark::State &state) {
  Bytes wire;
  wire.reserve(1024);
  for (auto _ : state) {
    NoiseHandshake i(NoiseConfig{.initiator = true, .identity = &identity_a(), .stream_muxers = {},
                                 .expected_remote = identity_b().peer_id()});
    NoiseHandshake r(NoiseConfig{.initiator = false, .identity = &identity_b(), .stream_muxers = {},
                                 .expected_remote = std::nullopt});
    if (!run_handshake(i, r, wire)) die("handshake failed: " + i.error() + r.error());
    NoiseTransport a = i.split(), b = r.split();
    benchmark::DoNotOptimize(&a);
    benchmark::DoNotOptimize(&b);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));  // items/s = handshakes per second
}
BENCHMARK(BM_NoiseHandshakeXX)->Unit(benchmark::kMicrosecond);

// The receiving application of the yamux benchmark: counts and consumes every byte at once.
class ConsumingHandler final : public yamux::Handler {
 public:
  yamux::Session *session = nullptr;
  uint64_t received = 0;
  uint32_t opened = 0;
  void on_stream_opened(uint32_t id) override { opened = id; }
  void on_data(uint32_t id, BytesView data) override {
    received += data.size();
    session->consume(id, data.size());
  }
  void on_remote_fin(uint32_t) override {}
  void on_stream_reset(uint32_t) override { die("yamux stream reset"); }
  void on_stream_closed(uint32_t) override {}
  void on_writable(uint32_t) override {}
  void on_go_away(uint32_t) override {}
};

void BM_YamuxFeed(benchmark::State &state) {
  ConsumingHandler client_handler, server_handler;
  yamux::Session client(yamux::Config{.client = true}, client_handler);
  yamux::Session server(yamux::Config{.client = false}, server_handler);
  client_handler.session = &client;
  server_handler.session = &server;
  const uint32_t id = client.open_stream();
  if (id == 0) die("open_stream failed");
  const Bytes payload(static_cast<size_t>(state.range(0)), 0x5a);
  Bytes to_server, to_client;
  to_server.reserve(payload.size() + 1024);
  uint64_t sent = 0;
  for (auto _ : state) {
    // The whole window is returned every round (the server consumes at once), so each write is taken whole.
    if (client.write(id, payload) != payload.size()) die("yamux write was short");
    sent += payload.size();
    to_server.clear();
    client.take_output(to_server);
    if (server.feed(to_server) != yamux::Session::Status::ok) die("server feed: " + server.error());
    to_client.clear();
    server.take_output(to_client);
    if (!to_client.empty() && client.feed(to_client) != yamux::Session::Status::ok) die("client feed: " + client.error());
  }
  if (server_handler.received != sent) die("yamux delivered a different byte count");
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_YamuxFeed)->Arg(k64KiB);

void BM_MultistreamNegotiate(benchmark::State &state) {
  const std::vector<std::string> supported = {"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", "/chorus/sink/1.0.0",
                                              "/chorus/echo/1.0.0"};
  Bytes wire;
  wire.reserve(256);
  for (auto _ : state) {
    Multistream i = Multistream::initiator({"/chorus/echo/1.0.0"});
    Multistream r = Multistream::responder(supported);
    Multistream *from = &i, *to = &r;
    for (int turn = 0; turn < 4 && (i.state() == Multistream::State::negotiating ||
                                    r.state() == Multistream::State::negotiating);
         ++turn) {
      wire.clear();
      from->take_output(wire);
      size_t used = 0;
      if (!wire.empty() && to->feed(wire, used) == Multistream::State::failed) die("multistream: " + to->error());
      std::swap(from, to);
    }
    if (i.state() != Multistream::State::done || r.state() != Multistream::State::done) die("multistream did not finish");
    benchmark::DoNotOptimize(i.protocol().data());
  }
}
BENCHMARK(BM_MultistreamNegotiate);

// 1024 values whose encodings are 1..9 bytes long, cycling.
std::vector<uint64_t> varint_values() {
  std::vector<uint64_t> v;
  uint64_t x = 0x9e3779b97f4a7c15u;
  for (int i = 0; i < 1024; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const int bits = 7 * (1 + i % 9) - 1;  // fits in 1..9 varint bytes
    v.push_back(x & ((uint64_t{1} << bits) - 1));
  }
  return v;
}

void BM_VarintWrite(benchmark::State &state) {
  const std::vector<uint64_t> values = varint_values();
  uint8_t buf[kMaxUvarintLen];
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(put_uvarint(values[i++ & 1023], buf));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_VarintWrite);

void BM_VarintRead(benchmark::State &state) {
  const std::vector<uint64_t> values = varint_values();
  Bytes encoded;
  std::vector<size_t> offsets;
  for (uint64_t v : values) {
    offsets.push_back(encoded.size());
    append_uvarint(encoded, v);
  }
  size_t i = 0;
  for (auto _ : state) {
    const size_t k = i++ & 1023;
    uint64_t value = 0;
    size_t used = 0;
    if (read_uvarint(BytesView(encoded).subspan(offsets[k]), value, used) != VarintStatus::ok) die("varint read");
    benchmark::DoNotOptimize(value);
    benchmark::DoNotOptimize(used);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_VarintRead);

const std::vector<std::string> &multiaddr_texts() {
  static const std::vector<std::string> texts = {
      "/ip4/127.0.0.1/tcp/4001/p2p/" + identity_a().peer_id().to_base58(),
      "/ip6/2001:db8::1/tcp/9000",
  };
  return texts;
}

void BM_MultiaddrParse(benchmark::State &state) {
  const std::string &text = multiaddr_texts()[static_cast<size_t>(state.range(0))];
  std::string why;
  for (auto _ : state) {
    auto ma = Multiaddr::parse(text, &why);
    if (!ma) die("multiaddr parse: " + why);
    benchmark::DoNotOptimize(ma->bytes().data());
  }
  state.SetLabel(text.substr(0, 24) + (text.size() > 24 ? "..." : ""));
}
BENCHMARK(BM_MultiaddrParse)->Arg(0)->Arg(1);

void BM_MultiaddrToString(benchmark::State &state) {
  std::string why;
  const auto ma = Multiaddr::parse(multiaddr_texts()[static_cast<size_t>(state.range(0))], &why);
  if (!ma) die("multiaddr parse: " + why);
  for (auto _ : state) {
    std::string s = ma->to_string();
    benchmark::DoNotOptimize(s.data());
  }
}
BENCHMARK(BM_MultiaddrToString)->Arg(0)->Arg(1);

}  // namespace

int main(int argc, char **argv) {
  if (sodium_init() < 0) die("sodium_init failed");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
