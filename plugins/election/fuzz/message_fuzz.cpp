// libFuzzer target `election_message`: the data of a message received on CHORUS/election/v1 or
// CHORUS/admin/heartbeat/v1, through what the plugin does with it - the strict parser, and for what
// parses, a rebuild that must parse back to the same bytes, then a fresh state machine that must take
// it (and run its timers) without breaking its own invariants. Seed corpus: corpus/election_message/
// (each message type, refusals: duplicate members, out-of-range terms and scores, bad ids, unknown
// types). Run: scripts/fuzz.sh <fuzz build dir> 60 election_message
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/election.hpp"
#include "core/messages.hpp"

using namespace chorus::election;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  std::string why;
  const auto m = parse_message(text, &why);
  if (!m) {
    if (why.empty()) std::abort();  // every refusal says why
    return 0;
  }
  const std::string rebuilt = to_json(*m);
  const auto again = parse_message(rebuilt, &why);
  if (!again || to_json(*again) != rebuilt) std::abort();
  if (term_of(*again) != term_of(*m) || author_of(*again) != author_of(*m)) std::abort();
  if (std::string_view(topic_of(*m)) != kElectionTopic && std::string_view(topic_of(*m)) != kHeartbeatTopic)
    std::abort();
  if (!check_author(*m, author_of(*m)) || check_author(*m, "")) std::abort();

  ElectionConfig cfg;
  cfg.cluster_size = 3;
  cfg.max_jitter_ms = 0;
  Election e(cfg, "self", PersistentState{2, "", 0, 0}, 1);
  e.start(Now{0, 0});
  e.on_message(Now{10, 10}, *m);
  e.tick(Now{100000, 100000});
  if (e.term() < 2) std::abort();  // terms never go back
  if (e.term() < term_of(*m) && author_of(*m) != "self") std::abort();  // a higher term is adopted
  if (e.role() == Role::admin) std::abort();  // one message from one peer cannot elect in a cluster of 3
  return 0;
}
