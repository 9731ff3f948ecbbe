// Per-beat cost of the backbeat engine: one BeatFrame processed with N active operations, i.e. N
// StatusClaims built and serialised (plus the health claim), as the plugin does on every beat.
// Target (issue 5): 10 000 operations per beat in under 20 ms of CPU.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "engine.hpp"
#include "transport.hpp"
#include "wire.hpp"

namespace {

constexpr uint64_t kUnix = 1700000000000;

std::string frame(int64_t idx) {
  chorus::backbeat::BeatFrame f;
  f.cluster_id = "bench";
  f.beat_index = idx;
  f.downbeat = false;
  f.phase = chorus::backbeat::BeatPhase::execute;
  f.hlc = "0001:0001:0001";
  f.deadline_at = chorus::backbeat::rfc3339(kUnix);
  f.tempo_bpm = 600;
  f.window_id = chorus::backbeat::window_id_for("bench", 0);
  return chorus::backbeat::serialize_beat_frame(f);
}

void BM_Beat(benchmark::State &state) {
  chorus::backbeat::EngineConfig cfg;
  cfg.cluster_id = "bench";
  cfg.agent_id = "chorus-bench-agent";
  cfg.node_id = "12D3KooWBenchNode";
  cfg.tempo_bpm = 600;
  cfg.bar_length = 1 << 30;  // no downbeat cleanup inside the loop
  chorus::backbeat::Engine e(cfg, 0, kUnix);
  std::vector<chorus::backbeat::Outgoing> out;
  int64_t beat = 1;
  e.on_frame(frame(beat), 0, kUnix, &out);
  for (int64_t i = 0; i < state.range(0); ++i)
    e.start_op("dht-store-" + std::to_string(i), "dht_store", 1000, "", kUnix);
  out.clear();
  e.flush_events(kUnix, &out);
  std::vector<std::string> frames;
  for (int i = 0; i < 1024; ++i) frames.push_back(frame(beat + 1 + i));
  size_t bytes = 0;
  for (auto _ : state) {
    out.clear();
    ++beat;
    e.on_frame(frames[static_cast<size_t>(beat - 2) % frames.size()], static_cast<uint64_t>(beat) * 100, kUnix, &out);
    if (static_cast<size_t>(beat - 1) % frames.size() == 0) {  // keep indices increasing
      state.PauseTiming();
      for (int i = 0; i < 1024; ++i) frames[static_cast<size_t>(i)] = frame(beat + 1 + i);
      state.ResumeTiming();
    }
    for (const auto &o : out) bytes += o.payload.size();
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["claims/beat"] = static_cast<double>(out.size());
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_Beat)->Arg(100)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();

// The same with Ed25519 signing of every claim (signing_key set), done on the publish path.
void BM_BeatSigned(benchmark::State &state) {
  chorus::backbeat::EngineConfig cfg;
  cfg.cluster_id = "bench";
  cfg.agent_id = "chorus-bench-agent";
  cfg.tempo_bpm = 600;
  cfg.bar_length = 1 << 30;
  chorus::backbeat::Engine e(cfg, 0, kUnix);
  chorus::backbeat::Signer signer(std::string(64, '7'));
  std::vector<chorus::backbeat::Outgoing> out;
  int64_t beat = 1;
  e.on_frame(frame(beat), 0, kUnix, &out);
  for (int64_t i = 0; i < state.range(0); ++i) e.start_op("op-" + std::to_string(i), "dht_store", 1000, "", kUnix);
  out.clear();
  e.flush_events(kUnix, &out);
  for (auto _ : state) {
    out.clear();
    ++beat;
    state.PauseTiming();
    const std::string f = frame(beat);
    state.ResumeTiming();
    e.on_frame(f, static_cast<uint64_t>(beat) * 100, kUnix, &out);
    for (const auto &o : out) benchmark::DoNotOptimize(signer.sign_b64(o.payload));
  }
}
BENCHMARK(BM_BeatSigned)->Arg(100)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();

// One Ed25519 signature over a typical beat claim (~330 bytes): the per-claim price of signing_key.
// Each claim is its own NATS message with its own signature (README "One signature per claim").
void BM_SignClaim(benchmark::State &state) {
  chorus::backbeat::Signer signer(std::string(64, '7'));
  std::string claim;
  chorus::backbeat::StatusClaim c;
  c.agent_id = "chorus-bench-agent";
  c.task_id = "dht-store-12345";
  c.beat_index = 17954713215;
  c.state = "executing";
  c.beats_left = 997;
  c.progress = 0.003;
  c.notes = "P2P dht_store: executing (peers: 5, node: 12D3KooWBenchNode)";
  c.hlc = "6f1a:0003:9c2e";
  c.metadata_members = R"("op_type":"dht_store","phase":"executing","peers":5,"beats_passed":3,)"
                       R"("window_id":"5b1d6a0e0f6c4e0f9d1f2a3b4c5d6e7f")";
  chorus::backbeat::append_status_claim(&claim, c);
  for (auto _ : state) benchmark::DoNotOptimize(signer.sign_b64(claim));
  state.counters["claim_bytes"] = static_cast<double>(claim.size());
}
BENCHMARK(BM_SignClaim)->Unit(benchmark::kMicrosecond);

void BM_ParseBeatFrame(benchmark::State &state) {
  const std::string f = frame(123456);
  for (auto _ : state) benchmark::DoNotOptimize(chorus::backbeat::parse_beat_frame(f));
}
BENCHMARK(BM_ParseBeatFrame);

}  // namespace

BENCHMARK_MAIN();
