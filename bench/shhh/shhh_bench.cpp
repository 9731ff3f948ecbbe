// shhh_bench (Google Benchmark): the SHHH sentinel with its built-in rules on one core.
//   BM_Text/<secrets>    redact_text over 1 KiB log lines
//   BM_Json/<secrets>    redact_json over 1 KiB JSON log records
//   BM_Prefilter         may_contain_secret alone (the cost every clean line pays)
// <secrets>: 0 = no secret, 1 = one line in 100 holds one, 100 = every line holds one.
// Bytes processed are the input bytes, so the figure is throughput of log text. The console prints
// it in MiB/s ("M/s", 1024-based); the JSON output (--benchmark_out) has bytes_per_second, from which
// docs/benchmarks.md quotes MB/s (10^6). A run cycles through 1000 distinct lines (1 MiB), so no
// single line is learnt by the branch predictors.
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "shhh/sentinel.hpp"

namespace {

using chorus::shhh::Channel;
using chorus::shhh::Options;
using chorus::shhh::Sentinel;

constexpr size_t kLineBytes = 1024;
constexpr size_t kLines = 1000;

// Ordinary agent log fragments: peer ids, multiaddrs, hashes, UCXL addresses, HTTP access lines.
const std::vector<std::string> kFragments = {
    "peer 12D3KooWGzh3QpXnA8u5jEHv4MPCK1ycWyF7uX6cE6JxJzq9wVvB connected via /ip4/10.0.3.17/tcp/4001",
    "gossip: delivered message 7f3a9c0e1b2d on CHORUS/coordination/v1 from 12D3KooWQmXr4Lq9A7bT2",
    "dht: put_value /chorus/ucxl/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 ok",
    "ucxi: put ucxl://agent-7:dev@chorus:issue-19/*^/notes/design.md version 3 (2048 bytes)",
    "http: GET /api/v1/health/ready 200 0.4 ms",
    "http: POST /ucxi/v1/put?address=ucxl%3A%2F%2Fa%3Ab%40c%3Ad%2F*%5E%2Fx 201 3.1 ms",
    "election: term 42 leader 12D3KooWBvP9sWm3zN1gE7 heartbeat after 250 ms",
    "backbeat: beat 1203 phase execute tempo 2 bpm, lag 3 ms",
    "ai-ollama: model qwen2.5-coder:7b answered 512 tokens in 4.2 s (121 tokens/s)",
    "p2p: yamux stream 17 closed by remote, 3 streams open, rtt 0.8 ms",
    "mdns: announced _p2p._udp.local on eth0 with 4 addresses",
    "eventlog: segment 000043 sealed, 4096 events, sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "reload: SIGHUP, config unchanged for 7 plugins, 1 plugin restarted",
    "resolver: chorus.dht 1.3 satisfies ^1 for ucxi",
};

const std::vector<std::string> kSecrets = {
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJlLXZhbHVl",
    "api_key=Zx81hfa9q2LmN0pQ7rS3",
    "aws key AKIAIOSFODNN7EXAMPLE",
    "token ghp_abcdefghijklmnopqrstuvwxyz0123456789AB",
    "OPENAI sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXyZ0_-aBcDeF",
    "refresh_token=1//0gAbCdEfGhIjKlMnOp-qRsTuVwXyZ",
    "db postgres://app:s3cr3t-pw@db.internal:5432/chorus",
};

std::string make_line(std::mt19937& rng, bool with_secret, bool json) {
  std::string msg;
  std::uniform_int_distribution<size_t> pick(0, kFragments.size() - 1);
  const size_t budget = kLineBytes - (json ? 96 : 48);
  size_t secret_at = with_secret ? budget / 2 : std::string::npos;
  while (msg.size() < budget) {
    if (msg.size() >= secret_at) {
      msg += kSecrets[rng() % kSecrets.size()];
      msg += "; ";
      secret_at = std::string::npos;
    }
    msg += kFragments[pick(rng)];
    msg += "; ";
  }
  std::string line;
  if (json) {
    line = R"({"ts":"2026-12-07T09:12:45.123Z","level":"info","source":"gossip","msg":")" + msg + R"(","n":1})";
  } else {
    line = "2026-12-07T09:12:45.123Z info [gossip] " + msg;
  }
  line.resize(kLineBytes - 1, ' ');
  if (json) line.replace(kLineBytes - 10, 9, "\",\"n\":1}");
  line += '\n';
  return line;
}

// `per_100` lines in every 100 hold a secret.
std::vector<std::string> make_lines(int per_100, bool json) {
  std::mt19937 rng(19);
  std::vector<std::string> lines;
  for (size_t i = 0; i < kLines; ++i) lines.push_back(make_line(rng, static_cast<int>(i % 100) < per_100, json));
  return lines;
}

const Sentinel& sentinel() {
  static const std::unique_ptr<Sentinel> s = [] {
    std::string error;
    return Sentinel::create(Options{}, &error);
  }();
  return *s;
}

void run(benchmark::State& state, bool json) {
  const std::vector<std::string> lines = make_lines(static_cast<int>(state.range(0)), json);
  const Sentinel& s = sentinel();
  size_t i = 0, bytes = 0, findings = 0;
  for (auto _ : state) {
    const std::string& line = lines[i];
    auto r = json ? s.redact_json(line, Channel::kLog, "bench") : s.redact_text(line, Channel::kLog, "bench");
    benchmark::DoNotOptimize(r.text.data());
    findings += r.findings.size();
    bytes += line.size();
    if (++i == lines.size()) i = 0;
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["findings_per_line"] =
      benchmark::Counter(static_cast<double>(findings) / static_cast<double>(state.iterations()));
}

void BM_Text(benchmark::State& state) { run(state, false); }
void BM_Json(benchmark::State& state) { run(state, true); }

void BM_Prefilter(benchmark::State& state) {
  const std::vector<std::string> lines = make_lines(0, false);
  const Sentinel& s = sentinel();
  size_t i = 0, bytes = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(s.may_contain_secret(lines[i]));
    bytes += lines[i].size();
    if (++i == lines.size()) i = 0;
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}

BENCHMARK(BM_Text)->Arg(0)->Arg(1)->Arg(100);
BENCHMARK(BM_Json)->Arg(0)->Arg(1)->Arg(100);
BENCHMARK(BM_Prefilter);

}  // namespace

BENCHMARK_MAIN();
