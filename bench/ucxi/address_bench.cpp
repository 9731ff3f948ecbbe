// address_bench (Google Benchmark): the UCXL address code on one core.
//   BM_ParseMix       parse() over a mix of realistic valid addresses (every temporal token, short and
//                     long components, paths of 0..6 segments); the figure the issue sets a floor
//                     for (>= 2 M addresses/s)
//   BM_ParseInvalid   parse() of addresses refused in each field, the error filled in (the path every
//                     bad request takes)
//   BM_ToString       the canonical text of parsed addresses
//   BM_Series         the series text (the ucxi index's key)
//   BM_Matches        wildcard matching of a pattern against the mix
// Items are addresses; a run cycles through the mix so branch predictors see the variety of a real
// request stream, not one address over and over.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "ucxl/address.hpp"

namespace {

using chorus::ucxl::Address;
using chorus::ucxl::parse;
using chorus::ucxl::ParseError;

const std::vector<std::string> &valid_mix() {
  static const std::vector<std::string> mix = {
      "ucxl://gpt4:architect@chorus:implement-auth/*^/src/auth.go",
      "ucxl://any:any@bzzz:any/*~/docs",
      "ucxl://claude:reviewer@CHORUS:task-1/*~3/notes/review.md",
      "ucxl://a:b@c:d/~~2/x",
      "ucxl://a:b@c:d/^^1/x",
      "ucxl://agent-7f3a9c:backend_developer@chorus-services:PROJ-1234/*^/decisions/2026-12-07-cache-policy.json",
      "ucxl://qwen2-5-coder:senior-software-architect@whoosh:council-formation/*~17/plans/phase-2/rollout.md",
      "ucxl://ollama-node-3:qa_engineer@hmmm:triage/~~10/reports/flaky/test_ucxi_loopback.log",
      "ucxl://any:security-expert@chorus:any/*^/audits",
      "ucxl://worker01:devops@infra:deploy-42/*^",
      "ucxl://slurp:curator@kaching:billing/*~1/schemas/v2/invoice.schema.json",
      "ucxl://claude-3-opus:tech_lead@chorus-agent:issue-18/^^3/src/ucxl/address.cpp",
      "ucxl://a1:r2@p3:t4/*~1000000000/deep/nested/path/with/many/segments.txt",
      "ucxl://agent:role@project:task/*^/README.md",
      "ucxl://any:any@any:any/*~",
      "ucxl://builder:ci@chorus:nightly-2026-12-06/*~204/artifacts/chorus-agent.tar.gz",
  };
  return mix;
}

const std::vector<std::string> &invalid_mix() {
  static const std::vector<std::string> mix = {
      "http://a:b@c:d/*^/x",  "ucxl://a@c:d/*^/x",    "ucxl://a:b@c/*^/x",       "ucxl://a!:b@c:d/*^/x",
      "ucxl://a:b@c:d/*x/p",  "ucxl://a:b@c:d/*^/p q", "ucxl://a:b@c:d/*~0/p",   "ucxl://a:b@c:d/~~/p",
      "ucxl://a:r@p:t/path",  "ucxl://a:b@c:d/*~01/p", "",                       "ucxl://a:b@c:d",
  };
  return mix;
}

std::vector<Address> parsed_mix() {
  std::vector<Address> out;
  for (const std::string &s : valid_mix()) out.push_back(*parse(s));
  return out;
}

void BM_ParseMix(benchmark::State &state) {
  const auto &mix = valid_mix();
  size_t i = 0, bytes = 0;
  for (auto _ : state) {
    const std::string &text = mix[i];
    auto a = parse(text);
    benchmark::DoNotOptimize(a);
    bytes += text.size();
    if (++i == mix.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_ParseMix);

void BM_ParseInvalid(benchmark::State &state) {
  const auto &mix = invalid_mix();
  size_t i = 0;
  ParseError err;
  for (auto _ : state) {
    auto a = parse(mix[i], &err);
    benchmark::DoNotOptimize(a);
    benchmark::DoNotOptimize(err);
    if (++i == mix.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseInvalid);

void BM_ToString(benchmark::State &state) {
  const std::vector<Address> mix = parsed_mix();
  size_t i = 0;
  for (auto _ : state) {
    std::string s = mix[i].to_string();
    benchmark::DoNotOptimize(s);
    if (++i == mix.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ToString);

void BM_Series(benchmark::State &state) {
  const std::vector<Address> mix = parsed_mix();
  size_t i = 0;
  for (auto _ : state) {
    std::string s = mix[i].series();
    benchmark::DoNotOptimize(s);
    if (++i == mix.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Series);

void BM_Matches(benchmark::State &state) {
  const std::vector<Address> mix = parsed_mix();
  const Address pattern = *parse("ucxl://any:any@chorus:any/*^/src");
  size_t i = 0;
  for (auto _ : state) {
    bool m = chorus::ucxl::matches(pattern, mix[i]);
    benchmark::DoNotOptimize(m);
    if (++i == mix.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Matches);

}  // namespace

BENCHMARK_MAIN();
