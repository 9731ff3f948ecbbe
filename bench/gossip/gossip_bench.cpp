// gossip_bench (Google Benchmark): the gossip plugin's per-message hot paths in process, on the code the
// plugin runs (gossip_core), without sockets or threads:
//   BM_DecodeRpc       decode_rpc of a frame holding one signed message with 1 KiB of data
//   BM_EncodeRpc       encode_rpc of the same RPC (what the node frames for each peer it sends to)
//   BM_SignMessage     signing_bytes + Ed25519 signature of a 1 KiB message (a local publish)
//   BM_VerifyMessage   check_message with the signature verified (every received message)
//   BM_MessageId       the from || seqno message id
//   BM_HandleRpc       Router::handle_rpc of an RPC carrying one new signed 1 KiB message from a mesh
//                      peer: checks, seen cache, signature verification, validation, delivery, and
//                      forwarding to `mesh_peers` other mesh peers, each RPC encoded as the node would
//                      frame it; with `preverified` the signature counts as checked already (the node
//                      verifies on a thread of its own and says so), so the row is the router's own work
//                      (FakeNet-style io: nothing leaves the process). The fake clock advances 1 ms per
//                      15 messages (15 000 msg/s) and heartbeats run every simulated second, so the
//                      seen cache, message cache and score decay do their real work.
// The messages are signed before the timed loop (in batches, timing paused): BM_SignMessage has that cost.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "router.hpp"
#include "rpc.hpp"
#include "signature.hpp"
#include "wire/identity.hpp"

namespace {

using namespace chorus::gossip;
using chorus::p2p::Identity;

const std::string kTopic = "bench/gossip/v1";
constexpr size_t kDataBytes = 1024;

Identity identity_for(uint8_t n) {
  uint8_t seed[32] = {};
  seed[0] = n;
  seed[31] = 0xb5;
  return Identity::from_seed(seed);
}

Message signed_message(const Identity &author, uint64_t seqno) {
  Message m;
  m.from = author.peer_id().bytes();
  m.seqno = seqno_bytes(seqno);
  m.topic = kTopic;
  Bytes data(kDataBytes);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 31 + seqno);
  m.data = std::move(data);
  sign_message(m, [&](BytesView d, uint8_t sig[64]) {
    auto s = author.sign(d);
    std::copy(s.begin(), s.end(), sig);
    return true;
  });
  return m;
}

void BM_DecodeRpc(benchmark::State &state) {
  const Identity author = identity_for(1);
  Rpc rpc;
  rpc.publish.push_back(signed_message(author, 1));
  const Bytes frame = encode_rpc(rpc);
  const RpcLimits limits;
  std::string why;
  for (auto _ : state) {
    auto decoded = decode_rpc(frame, limits, &why);
    benchmark::DoNotOptimize(decoded);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * frame.size()));
  state.counters["frame_bytes"] = static_cast<double>(frame.size());
}
BENCHMARK(BM_DecodeRpc);

void BM_EncodeRpc(benchmark::State &state) {
  const Identity author = identity_for(1);
  Rpc rpc;
  rpc.publish.push_back(signed_message(author, 1));
  for (auto _ : state) {
    Bytes frame;
    append_frame(frame, rpc);
    benchmark::DoNotOptimize(frame);
  }
}
BENCHMARK(BM_EncodeRpc);

void BM_SignMessage(benchmark::State &state) {
  const Identity author = identity_for(1);
  uint64_t seqno = 0;
  for (auto _ : state) {
    Message m = signed_message(author, ++seqno);
    benchmark::DoNotOptimize(m);
  }
}
BENCHMARK(BM_SignMessage);

void BM_VerifyMessage(benchmark::State &state) {
  const Identity author = identity_for(1);
  const Message m = signed_message(author, 1);
  std::string why;
  for (auto _ : state) {
    auto reason = check_message(m, SignaturePolicy::kStrictSign, true, &why);
    if (reason) state.SkipWithError("a valid message failed verification");
    benchmark::DoNotOptimize(reason);
  }
}
BENCHMARK(BM_VerifyMessage);

void BM_MessageId(benchmark::State &state) {
  const Identity author = identity_for(1);
  const Message m = signed_message(author, 1);
  for (auto _ : state) {
    Bytes id = message_id(m, SignaturePolicy::kStrictSign, MessageIdFn::kFromSeqno);
    benchmark::DoNotOptimize(id);
  }
}
BENCHMARK(BM_MessageId);

// The router's side of the node: sends are encoded (the node's framing), the rest is counted.
struct BenchIo : RouterIo {
  uint64_t now = 1'000'000;
  uint64_t delivered = 0;
  uint64_t sent_rpcs = 0;
  uint64_t sent_bytes = 0;
  const Identity *identity = nullptr;

  void send(const PeerId &peer, Rpc rpc) override {
    (void)peer;
    Bytes frame;
    append_frame(frame, rpc);
    ++sent_rpcs;
    sent_bytes += frame.size();
    benchmark::DoNotOptimize(frame);
  }
  Validation validate(const ReceivedMessage &m) override {
    (void)m;
    return Validation::kAccept;
  }
  void deliver(const ReceivedMessage &m) override {
    (void)m;
    ++delivered;
  }
  bool sign(BytesView data, uint8_t signature[64]) override {
    auto s = identity->sign(data);
    std::copy(s.begin(), s.end(), signature);
    return true;
  }
  uint64_t now_ms() override { return now; }
};

void BM_HandleRpc(benchmark::State &state) {
  const int mesh_peers = static_cast<int>(state.range(0));
  const bool preverified = state.range(1) != 0;
  const Identity local = identity_for(0);
  const Identity source = identity_for(1);
  BenchIo io;
  io.identity = &local;
  RouterParams params;
  PeerScoreParams score_params;  // the plugin's defaults: scoring on
  Router router(params, score_params, PeerScoreThresholds{}, SignaturePolicy::kStrictSign, local.peer_id(),
                local.public_key_protobuf(), io);
  router.join(kTopic);
  Rpc subscribe;
  subscribe.subscriptions.push_back(SubOpts{true, kTopic});
  std::vector<Identity> peers;
  peers.push_back(source);
  for (int i = 0; i < mesh_peers; ++i) peers.push_back(identity_for(static_cast<uint8_t>(10 + i)));
  for (size_t i = 0; i < peers.size(); ++i) {
    router.add_peer(peers[i].peer_id(), Protocol::kMeshsub11, i % 2 == 0, "10.0.0." + std::to_string(i + 1));
    router.handle_rpc(peers[i].peer_id(), subscribe);
  }
  io.now += 1000;
  router.heartbeat();  // builds the mesh from the subscribed peers

  constexpr size_t kBatch = 4096;
  std::vector<Rpc> batch;
  uint64_t seqno = 0;
  size_t next = kBatch;
  uint64_t next_heartbeat = io.now + params.heartbeat_ms;
  uint64_t n = 0;
  for (auto _ : state) {
    if (next == kBatch) {
      state.PauseTiming();
      batch.clear();
      for (size_t i = 0; i < kBatch; ++i) {
        Rpc rpc;
        rpc.publish.push_back(signed_message(source, ++seqno));
        batch.push_back(std::move(rpc));
      }
      next = 0;
      state.ResumeTiming();
    }
    router.handle_rpc(source.peer_id(), std::move(batch[next++]), preverified);
    if (++n % 15 == 0) {
      ++io.now;
      if (io.now >= next_heartbeat) {
        router.heartbeat();
        next_heartbeat += params.heartbeat_ms;
      }
    }
  }
  if (io.delivered != n) state.SkipWithError("not every message was delivered");
  state.counters["delivered"] = static_cast<double>(io.delivered);
  state.counters["fwd_rpcs_per_msg"] = n ? static_cast<double>(io.sent_rpcs) / static_cast<double>(n) : 0;
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_HandleRpc)->ArgNames({"mesh_peers", "preverified"})->Args({0, 0})->Args({5, 0})->Args({5, 1});

}  // namespace

BENCHMARK_MAIN();
