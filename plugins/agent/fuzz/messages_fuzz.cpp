// Fuzzes the agent's parsers with arbitrary bytes as a pubsub envelope. Invariants: any bytes are safe;
// a refusal has a reason; an accepted message round-trips (parse of to_json gives the same JSON); and
// a coordinator that hears it (then ticks) neither crashes nor claims beyond max_tasks.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "coordinator.hpp"
#include "messages.hpp"

using namespace chorus::agent;

namespace {

[[noreturn]] void violated(const char *what) {
  std::fprintf(stderr, "agent_messages_fuzz: invariant violated: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char *>(data), size);
  ParseError err;
  if (auto m = parse_envelope(bytes, &err)) {
    const json j = to_json(*m);
    ParseError again;
    auto back = parse_message(type_of(*m), j, &again);
    if (!back) violated("an accepted message does not parse back");
    if (to_json(*back) != j) violated("an accepted message does not round-trip");
    CoordinatorConfig cfg;
    cfg.node_id = "12D3KooWFuzz";
    cfg.agent_id = "fuzz";
    cfg.capabilities = {"general"};
    cfg.max_tasks = 1;
    Outbound out;
    out.reannounce_peers = [] { return std::optional<std::vector<std::string>>(std::vector<std::string>{}); };
    Coordinator c(cfg, out);
    TaskAnnouncement a{"t-1", 1, "seed", "", {}, "", "other", "other", 0};
    c.heard(a, Now{1, 1});
    c.heard(*back, Now{2, 2});
    c.tick(Now{5000, 5000});
    c.heard(*back, Now{5001, 5001});
    c.tick(Now{100000, 100000});
    if (c.current_tasks() + c.pending_claims() > cfg.max_tasks) violated("claimed beyond max_tasks");
  } else if (err.reason.empty()) {
    violated("a refusal without a reason");
  }
  ParseError herr;
  if (auto h = parse_hmmm_envelope(bytes, &herr)) {
    if (!is_hmmm_type(h->type) || !h->data.is_object()) violated("an accepted HMMM message is not one");
  } else if (herr.reason.empty()) {
    violated("an HMMM refusal without a reason");
  }
  return 0;
}
