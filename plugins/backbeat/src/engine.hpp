// The backbeat plugin's core: P2P operations, beat handling, StatusClaims, tempo measurement, drift
// classification and local degradation. Pure logic: no host, no NATS, no threads, no clocks of its
// own (every call gets the monotonic and the wall time). Not thread-safe: the plugin serialises calls.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "wire.hpp"

namespace chorus::backbeat {

struct EngineConfig {
  std::string cluster_id = "chorus-production";
  std::string agent_id = "chorus-agent";
  std::string node_id = "unknown";
  double tempo_bpm = 2.0;            // until a pulse announces another; the pulse's target tempo
  int64_t bar_length = 120;          // beats per bar (pulse mode, local derivation)
  double degrade_after_beats = 2.0;  // silence (in beats) before deriving beats locally
  int64_t health_every = 8;          // health claim every N processed beats
  int64_t max_catch_up = 16;         // local beats derived per tick at most
};

enum class OpPhase : int32_t { started = 0, connecting, negotiating, executing, completed, failed };
const char *op_phase_name(OpPhase p) noexcept;
bool valid_op_type(std::string_view t) noexcept;

enum class BeatSource : uint8_t { remote, local, pulse };

struct Operation {
  std::string id;
  std::string type;
  int64_t start_beat = 0;
  uint32_t estimated_beats = 1;
  OpPhase phase = OpPhase::started;
  uint32_t peer_count = 0;
  uint64_t start_unix_ms = 0;
  uint64_t seq = 0;  // start order
  std::string data;  // compact JSON, empty = none
  std::string fail_reason;
  bool finished = false;
  bool overrun = false;
  bool provisional_start = false;  // started before the first beat was known
};

// One message to publish: a StatusClaim (status subject) or a BeatFrame (beat subject).
struct Outgoing {
  bool is_frame = false;
  std::string payload;
};

struct EngineStats {
  uint64_t beats_remote = 0, beats_local = 0, beats_pulse = 0, beats_skipped = 0;
  uint64_t frames_invalid = 0, frames_stale = 0, frames_wrong_cluster = 0, frames_legacy = 0;
  uint64_t tempo_jumps = 0;  // accepted frames whose tempo moved more than the ±10 % limit
  uint64_t claims_built = 0, health_claims = 0;
  uint64_t ops_started = 0, ops_completed = 0, ops_failed = 0, overruns = 0;
  uint64_t degradations = 0, recoveries = 0, cleaned_up = 0;
};

struct EngineSnapshot {
  int64_t current_beat = 0;
  bool have_beat = false;
  double tempo_bpm = 0;
  double measured_bpm = 0;
  int32_t drift = 0;  // CHORUS_BACKBEAT_DRIFT_*
  bool degraded = false;
  size_t active_operations = 0;
  size_t tracked_operations = 0;  // active + finished awaiting downbeat cleanup
  std::string window_id;
};

enum class FrameVerdict { processed, synced, stale, invalid, wrong_cluster, legacy };

// BACKBEAT-REQ-004: the tempo changes by at most 10 % at a time. Tempos are multiples of 0.1 BPM
// (BeatFrame schema), so below 1 BPM, where 10 % is less than that resolution, one 0.1 BPM step is
// the smallest possible change and is allowed too.
constexpr double kMaxTempoStep = 0.10;
bool tempo_change_within_limit(double from_bpm, double to_bpm) noexcept;
// The next tempo on the way from `from_bpm` to `target_bpm`: the target itself when within the
// limit, else one step of at most 10 % (never less than 0.1 BPM), a multiple of 0.1.
double next_tempo_step(double from_bpm, double target_bpm) noexcept;

// A frame whose tempo broke the limit (accepted anyway: the pulse leader is authoritative).
struct TempoJump {
  double from_bpm = 0, to_bpm = 0;
  int64_t beat_index = 0;
};

class Engine {
 public:
  Engine(EngineConfig cfg, uint64_t mono_ms, uint64_t unix_ms);

  // ---- operations (throw chorus::Error with the service's codes) ----
  void start_op(std::string_view id, std::string_view type, uint32_t estimated_beats, std::string_view data_json,
                uint64_t unix_ms);
  void update_phase(std::string_view id, int32_t phase, uint32_t peer_count);
  // Both return the operation's type.
  std::string complete_op(std::string_view id, uint32_t peer_count);
  std::string fail_op(std::string_view id, std::string_view reason);
  bool has_pending_events() const noexcept { return !pending_.empty(); }
  // Moves the queued event claims to *out: each operation's start claim, then its latest state
  // (later updates replace earlier ones, never the start claim or a terminal one).
  void flush_events(uint64_t unix_ms, std::vector<Outgoing> *out);

  // ---- beats ----
  // A BeatFrame from NATS: validated, filtered (cluster, order) and, when new, processed.
  FrameVerdict on_frame(std::string_view json, uint64_t mono_ms, uint64_t unix_ms, std::vector<Outgoing> *out,
                        std::string *why = nullptr);
  // Processes one beat: a claim per active operation, health claim every N beats, downbeat cleanup.
  void on_beat(const BeatFrame &f, BeatSource src, uint64_t mono_ms, uint64_t unix_ms, std::vector<Outgoing> *out);
  // A beat this agent pulses itself (already published): processed like a received one.
  void pulse_beat(const BeatFrame &f, uint64_t mono_ms, uint64_t unix_ms, std::vector<Outgoing> *out);
  // Degradation watchdog and local beat derivation; call periodically.
  void tick(uint64_t mono_ms, uint64_t unix_ms, std::vector<Outgoing> *out);
  // This agent is the pulse: it makes its own beats, so the watchdog never degrades.
  void set_pulsing(bool on, uint64_t mono_ms) noexcept;
  bool pulsing() const noexcept { return pulsing_; }
  // A BeatFrame for beat `index` at this engine's tempo and bar length.
  BeatFrame make_frame(int64_t index, uint64_t unix_ms);
  // The frame this agent pulses for beat `index`: on a downbeat the tempo first moves one limited
  // step toward the pulse target (set_pulse_target), so a tempo change spreads over bars.
  BeatFrame next_pulse_frame(int64_t index, uint64_t unix_ms);
  // A reconfigured tempo for pulse mode; approached from the current tempo by next_pulse_frame.
  void set_pulse_target(double bpm) noexcept { cfg_.tempo_bpm = bpm; }
  double pulse_target() const noexcept { return cfg_.tempo_bpm; }
  double tempo() const noexcept { return tempo_; }
  const TempoJump &last_tempo_jump() const noexcept { return last_jump_; }

  // The seed's beat, downbeat and cleanup lines for the beats processed since the last call (the
  // plugin logs them at debug level, outside the engine's lock).
  std::vector<std::string> take_beat_log();

  // ---- introspection ----
  EngineSnapshot snapshot() const;
  const EngineStats &stats() const noexcept { return stats_; }
  const EngineConfig &config() const noexcept { return cfg_; }
  std::vector<const Operation *> operations() const;  // in start order
  double period_ms() const noexcept { return 60000.0 / tempo_; }
  int64_t current_beat() const noexcept { return current_beat_; }
  // Flags used in the health claim's state (the plugin reports transport state here).
  void set_connected(bool c) noexcept { connected_ = c; }
  void note_error() noexcept { errors_since_health_ = true; }

 private:
  struct Pending {
    std::string op_id;
    std::string state;
    int32_t beats_left;
    double progress;
    std::string notes;
    std::string metadata;
    bool terminal;
    bool has_data;
    bool start;  // the operation's start claim: kept as it is, later states queue after it
  };
  std::vector<std::string> beat_log_;
  Operation *find_active(std::string_view id);
  void queue_event(const Operation &op, bool with_data);
  std::string op_notes(const Operation &op) const;
  void emit_claim(std::string_view task, std::string_view state, int32_t beats_left, double progress,
                  std::string_view notes, std::string_view metadata, uint64_t unix_ms, std::vector<Outgoing> *out);
  void record_arrival(int64_t index, uint64_t mono_ms);
  void measure();

  EngineConfig cfg_;
  Hlc hlc_;
  std::unordered_map<std::string, Operation> ops_;
  size_t active_ = 0;
  uint64_t seq_ = 0;
  std::vector<Pending> pending_;
  std::unordered_map<std::string, size_t> pending_index_;

  int64_t current_beat_ = 0;
  bool have_beat_ = false;
  bool have_real_ = false;
  int64_t last_real_index_ = -1;
  uint64_t beats_processed_ = 0;
  double tempo_;
  double last_frame_tempo_ = 0;  // tempo of the last accepted real frame (0: none yet)
  TempoJump last_jump_;
  std::string window_id_;
  uint64_t last_arrival_mono_;
  uint64_t last_beat_mono_;
  bool degraded_ = false;
  uint64_t local_next_due_ = 0;
  bool pulsing_ = false;
  bool connected_ = false;
  bool errors_since_health_ = false;

  std::array<std::pair<int64_t, uint64_t>, 32> ring_{};
  size_t ring_count_ = 0, ring_head_ = 0;
  double measured_bpm_ = 0;

  EngineStats stats_;
  std::string scratch_;
};

}  // namespace chorus::backbeat
