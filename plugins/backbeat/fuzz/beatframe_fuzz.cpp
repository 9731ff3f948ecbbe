// libFuzzer target for everything the backbeat plugin reads from NATS: a BeatFrame payload goes
// through parse_beat_frame and then through Engine::on_frame (which also builds StatusClaims for
// tracked operations). Invariants checked (abort with "invariant violated: ..."):
//  - an accepted frame satisfies the schema constraints and re-serialises to a frame that parses to
//    the same values;
//  - every StatusClaim the engine emits is valid against statusclaim-v1;
//  - the engine's beat never moves backwards once a real frame has set the numbering;
//  - a legacy {bar, beat} frame is never accepted, and never changes the beat.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "engine.hpp"
#include "wire.hpp"

namespace {
[[noreturn]] void violated(const char *what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string_view in(reinterpret_cast<const char *>(data), size);
  std::string why;
  bool legacy = false;
  auto f = chorus::backbeat::parse_beat_frame(in, &why, &legacy);
  if (legacy && f) violated("legacy frame accepted");
  if (f) {
    if (!chorus::backbeat::valid_cluster_id(f->cluster_id) || f->beat_index < 0 || !chorus::backbeat::valid_hlc(f->hlc) ||
        !chorus::backbeat::valid_rfc3339(f->deadline_at) || !chorus::backbeat::tempo_valid(f->tempo_bpm) || f->window_id.size() != 32)
      violated("accepted frame breaks the schema");
    auto again = chorus::backbeat::parse_beat_frame(chorus::backbeat::serialize_beat_frame(*f));
    if (!again || again->beat_index != f->beat_index || again->cluster_id != f->cluster_id ||
        again->downbeat != f->downbeat || again->phase != f->phase || again->window_id != f->window_id)
      violated("frame does not round-trip");
  } else if (why.empty()) {
    violated("rejected frame without a reason");
  }

  // The same input (and a few of its beats) through an engine with operations to report on.
  chorus::backbeat::EngineConfig cfg;
  cfg.cluster_id = f ? f->cluster_id : "fuzz";
  cfg.tempo_bpm = 600;
  cfg.bar_length = 4;
  cfg.health_every = 1;
  chorus::backbeat::Engine e(cfg, 0, 1700000000000);
  e.start_op("op-1", "election", 2, "", 1700000000000);
  e.start_op("op-2", "dht_store", 1000, R"({"k":[1,2,3]})", 1700000000000);
  std::vector<chorus::backbeat::Outgoing> out;
  // The first real frame may renumber the beat (it is authoritative); after that it never goes back.
  e.on_frame(in, 0, 1700000000000, &out);
  int64_t last = e.current_beat();
  for (uint64_t t = 1; t < 3; ++t) {
    const auto verdict = e.on_frame(in, t * 100, 1700000000000 + t * 100, &out);
    if (verdict == chorus::backbeat::FrameVerdict::legacy && e.current_beat() != last) violated("legacy frame moved the beat");
    if (e.current_beat() < last) violated("beat moved backwards");
    last = e.current_beat();
  }
  e.tick(100000, 1700000100000, &out);
  if (e.current_beat() < last) violated("beat moved backwards after tick");
  for (const auto &o : out)
    if (!o.is_frame && !chorus::backbeat::validate_status_claim(o.payload, &why)) violated("emitted claim is schema-invalid");
  return 0;
}
