// BACKBEAT v1 wire formats (docs/protocols.md, BACKBEAT over NATS): BeatFrame parsing + schema
// validation, BeatFrame and StatusClaim serialisation, HLC stamps, RFC 3339 times, window ids. No I/O,
// no host.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace chorus::backbeat {

enum class BeatPhase : uint8_t { plan, execute, review };
const char *phase_name(BeatPhase p) noexcept;

struct BeatFrame {
  std::string cluster_id;
  int64_t beat_index = 0;
  bool downbeat = false;
  BeatPhase phase = BeatPhase::plan;
  std::string hlc;
  std::string deadline_at;
  double tempo_bpm = 0;
  std::string window_id;
  // metadata (optional)
  std::string pulse_version;
  std::string cluster_health;
  int64_t expected_agents = -1;
};

// Parses one BeatFrame and validates it against beatframe-v1.schema.json (additionalProperties
// false, every constraint of the table in docs/protocols.md, BeatFrame v1). Never throws; on failure
// returns nullopt and sets *why (if given) to a short reason naming the field.
//
// Legacy frames (BACKBEAT REQ-043, "legacy {bar,beat} accepted with warnings"): an object with
// non-negative integer `bar` and `beat` and no `beat_index` is recognised and reported through
// *legacy (if given), still with nullopt. The BACKBEAT specification names only the two fields: not whether `beat`
// counts from 0 or 1, nor the bar length the old pulse used (the v0.1 protocol's illustrative 8-beat
// bars were superseded by the schemas' 120), nor a cluster or tempo. A guessed mapping could place
// the agent far ahead of the real pulse, and since beats never move backwards that would lock it
// out of the v1 pulse; so legacy frames are recognised, warned about and counted, never used.
std::optional<BeatFrame> parse_beat_frame(std::string_view json, std::string *why = nullptr,
                                          bool *legacy = nullptr) noexcept;

// Serialises a frame (assumed valid) as compact JSON.
std::string serialize_beat_frame(const BeatFrame &f);

// StatusClaim v1 fields the plugin emits. Optional fields are written when set.
struct StatusClaim {
  std::string_view agent_id;
  std::string_view task_id;   // empty = omitted
  int64_t beat_index = 0;
  std::string_view state;     // idle|planning|executing|reviewing|completed|failed|blocked|helping
  int32_t beats_left = -1;    // -1 = omitted; clamped to 0..1000
  double progress = -1;       // <0 = omitted; clamped to 0..1
  std::string_view notes;     // truncated to 256 bytes at a UTF-8 boundary
  std::string_view hlc;
  // metadata object members, already serialised JSON ("\"k\":v,..." without braces); empty = none
  std::string_view metadata_members;
};
// Appends the compact JSON of `c` to *out (fast path: no JSON library).
void append_status_claim(std::string *out, const StatusClaim &c);

// Validates a StatusClaim JSON text against statusclaim-v1 (used by tests and the fuzz target).
bool validate_status_claim(std::string_view json, std::string *why = nullptr) noexcept;

// JSON string escaping (appends the quoted string).
void append_json_string(std::string *out, std::string_view s);
// Truncates to at most `max` bytes without splitting a UTF-8 sequence.
std::string_view utf8_truncate(std::string_view s, size_t max) noexcept;

// ---- HLC: "pppp:llll:nnnn" (schema pattern 4hex:4hex:4hex). pppp = unix seconds mod 2^16,
// llll = logical counter, nnnn = node suffix. The 16-bit fields are what the schema allows; the
// physical part therefore wraps every ~18 h (documented in the README). ----
class Hlc {
 public:
  explicit Hlc(std::string_view node_id);
  std::string next(uint64_t unix_ms);
  // Merges a remote stamp (receive event). Malformed stamps are ignored.
  void observe(std::string_view remote, uint64_t unix_ms);
  uint16_t node() const noexcept { return node_; }

 private:
  uint16_t node_;
  uint16_t pt_ = 0;
  uint16_t logical_ = 0;
  bool have_ = false;
};
bool valid_hlc(std::string_view s) noexcept;

// ---- names and ids ----
bool valid_cluster_id(std::string_view s) noexcept;  // ^[a-zA-Z0-9_-]+$, 1..64
bool valid_agent_id(std::string_view s) noexcept;    // ^[a-zA-Z0-9_:-]+$, 1..128 (also task ids)
std::string sanitize_agent_id(std::string_view s);    // maps other bytes to '-', truncates to 128
bool valid_rfc3339(std::string_view s) noexcept;
std::string rfc3339(uint64_t unix_ms);
// 32 lowercase hex chars identifying bar `bar` of `cluster_id` (BLAKE2b-128 of "cluster:bar").
std::string window_id_for(std::string_view cluster_id, int64_t bar);
bool tempo_valid(double bpm) noexcept;  // 0.1..1000, multipleOf 0.1

}  // namespace chorus::backbeat
