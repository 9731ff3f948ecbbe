#include "engine.hpp"

#include <chorus/plugin.hpp>
#include <chorus/services/backbeat_v1.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

namespace chorus::backbeat {
namespace {

constexpr std::string_view kHealthTask = "chorus-p2p-health";

void append_int(std::string *out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, r.ptr);
}

std::string json_quoted(std::string_view s) {
  std::string out;
  append_json_string(&out, s);
  return out;
}

}  // namespace

const char *op_phase_name(OpPhase p) noexcept {
  switch (p) {
    case OpPhase::started: return "started";
    case OpPhase::connecting: return "connecting";
    case OpPhase::negotiating: return "negotiating";
    case OpPhase::executing: return "executing";
    case OpPhase::completed: return "completed";
    case OpPhase::failed: return "failed";
  }
  return "started";
}

bool valid_op_type(std::string_view t) noexcept {
  return t == CHORUS_BACKBEAT_OP_ELECTION || t == CHORUS_BACKBEAT_OP_DHT_STORE || t == CHORUS_BACKBEAT_OP_PUBSUB_SYNC ||
         t == CHORUS_BACKBEAT_OP_PEER_DISCOVERY;
}

bool tempo_change_within_limit(double from_bpm, double to_bpm) noexcept {
  if (!(from_bpm > 0)) return true;
  const double allowed = std::max(from_bpm * kMaxTempoStep, 0.1);
  return std::fabs(to_bpm - from_bpm) <= allowed + 1e-9;
}

double next_tempo_step(double from_bpm, double target_bpm) noexcept {
  if (tempo_change_within_limit(from_bpm, target_bpm)) return target_bpm;
  // Round toward the current tempo so the step stays inside the limit.
  double next = target_bpm > from_bpm ? std::floor(from_bpm * (1.0 + kMaxTempoStep) * 10.0 + 1e-9) / 10.0
                                      : std::ceil(from_bpm * (1.0 - kMaxTempoStep) * 10.0 - 1e-9) / 10.0;
  if (std::fabs(next - from_bpm) < 0.05) next = from_bpm + (target_bpm > from_bpm ? 0.1 : -0.1);
  return std::round(next * 10.0) / 10.0;
}

Engine::Engine(EngineConfig cfg, uint64_t mono_ms, uint64_t unix_ms)
    : cfg_(std::move(cfg)), hlc_(cfg_.agent_id), tempo_(cfg_.tempo_bpm), last_arrival_mono_(mono_ms),
      last_beat_mono_(mono_ms) {
  // Until a pulse says otherwise, the beat index follows the wall clock (the same rule the pulse
  // uses), so locally derived beats and a pulse started anywhere in the cluster agree.
  current_beat_ = static_cast<int64_t>(static_cast<double>(unix_ms) / period_ms());
  window_id_ = window_id_for(cfg_.cluster_id, current_beat_ / std::max<int64_t>(1, cfg_.bar_length));
}

// ---------------------------------------------------------------------------------------------
// Operations

Operation *Engine::find_active(std::string_view id) {
  auto it = ops_.find(std::string(id));
  if (it == ops_.end() || it->second.finished) return nullptr;
  return &it->second;
}

void Engine::start_op(std::string_view id, std::string_view type, uint32_t estimated_beats, std::string_view data_json,
                      uint64_t unix_ms) {
  if (!valid_agent_id(id))
    throw chorus::Error(CHORUS_E_INVALID_ARG, "operation id must be 1-128 characters of [A-Za-z0-9_:-]");
  if (!valid_op_type(type))
    throw chorus::Error(CHORUS_E_INVALID_ARG, "unknown operation type '" + std::string(utf8_truncate(type, 64)) +
                                                  "' (election, dht_store, pubsub_sync, peer_discovery)");
  if (estimated_beats < 1 || estimated_beats > CHORUS_BACKBEAT_MAX_BEATS)
    throw chorus::Error(CHORUS_E_INVALID_ARG, "estimated_beats must be 1..1000");
  std::string data;
  if (!data_json.empty()) {
    if (data_json.size() > 16 * 1024) throw chorus::Error(CHORUS_E_INVALID_ARG, "operation data larger than 16 KiB");
    auto j = nlohmann::json::parse(data_json.begin(), data_json.end(), nullptr, false);
    if (j.is_discarded()) throw chorus::Error(CHORUS_E_INVALID_ARG, "operation data is not valid JSON");
    data = j.dump();
  }
  std::string key(id);
  auto it = ops_.find(key);
  if (it != ops_.end() && !it->second.finished)
    throw chorus::Error(CHORUS_E_EXISTS, "operation " + key + " is already active");
  Operation op;
  op.id = key;
  op.type = std::string(type);
  op.start_beat = current_beat_;
  op.provisional_start = !have_beat_;
  op.estimated_beats = estimated_beats;
  op.start_unix_ms = unix_ms;
  op.seq = ++seq_;
  op.data = std::move(data);
  // A finished operation still awaiting downbeat cleanup is replaced; its terminal claim stays queued.
  Operation &slot = ops_[key];
  slot = std::move(op);
  ++active_;
  ++stats_.ops_started;
  queue_event(slot, true);
}

void Engine::update_phase(std::string_view id, int32_t phase, uint32_t peer_count) {
  if (phase < CHORUS_BACKBEAT_PHASE_STARTED || phase > CHORUS_BACKBEAT_PHASE_EXECUTING)
    throw chorus::Error(CHORUS_E_INVALID_ARG,
                        phase == CHORUS_BACKBEAT_PHASE_COMPLETED || phase == CHORUS_BACKBEAT_PHASE_FAILED
                            ? "use complete_operation / fail_operation to finish an operation"
                            : "unknown phase");
  Operation *op = find_active(id);
  if (op == nullptr) throw chorus::Error(CHORUS_E_NOT_FOUND, "operation " + std::string(id) + " not found");
  op->phase = static_cast<OpPhase>(phase);
  op->peer_count = peer_count;
  queue_event(*op, false);
}

std::string Engine::complete_op(std::string_view id, uint32_t peer_count) {
  Operation *op = find_active(id);
  if (op == nullptr) throw chorus::Error(CHORUS_E_NOT_FOUND, "operation " + std::string(id) + " not found");
  op->phase = OpPhase::completed;
  op->peer_count = peer_count;
  op->finished = true;
  --active_;
  ++stats_.ops_completed;
  queue_event(*op, false);
  return op->type;
}

std::string Engine::fail_op(std::string_view id, std::string_view reason) {
  Operation *op = find_active(id);
  if (op == nullptr) throw chorus::Error(CHORUS_E_NOT_FOUND, "operation " + std::string(id) + " not found");
  op->phase = OpPhase::failed;
  op->fail_reason = std::string(utf8_truncate(reason, 200));
  op->finished = true;
  --active_;
  ++stats_.ops_failed;
  queue_event(*op, false);
  return op->type;
}

std::string Engine::op_notes(const Operation &op) const {
  std::string n;
  if (op.phase == OpPhase::failed) {
    n = "P2P operation failed: " + op.fail_reason + " (type: " + op.type + ")";
    return n;
  }
  n.reserve(96);
  n += "P2P ";
  n += op.type;
  n += ": ";
  n += op_phase_name(op.phase);
  n += " (peers: ";
  append_int(&n, op.peer_count);
  n += ", node: ";
  n += cfg_.node_id;
  n += ')';
  return n;
}

void Engine::queue_event(const Operation &op, bool with_data) {
  auto it = pending_index_.find(op.id);
  // The latest state of an operation replaces an earlier queued update, but never its start claim
  // (observers must see that it started, and with what data) nor a terminal one.
  const bool coalesce =
      it != pending_index_.end() && !pending_[it->second].terminal && !pending_[it->second].start;
  if (coalesce && pending_[it->second].has_data) with_data = true;
  Pending p;
  p.start = with_data;  // only start_op queues with its data
  p.op_id = op.id;
  const int64_t passed = std::max<int64_t>(0, current_beat_ - op.start_beat);
  switch (op.phase) {
    case OpPhase::completed:
      p.state = "completed";
      p.beats_left = 0;
      p.progress = 1.0;
      p.terminal = true;
      break;
    case OpPhase::failed:
      p.state = "failed";
      p.beats_left = 0;
      p.progress = 0.0;
      p.terminal = true;
      break;
    default:
      p.state = "executing";
      p.beats_left = static_cast<int32_t>(std::max<int64_t>(0, op.estimated_beats - passed));
      p.progress = std::min(1.0, static_cast<double>(passed) / op.estimated_beats);
      p.terminal = false;
  }
  p.notes = op_notes(op);
  std::string md = "\"op_type\":" + json_quoted(op.type) + ",\"phase\":\"" + op_phase_name(op.phase) +
                   "\",\"peers\":" + std::to_string(op.peer_count) + ",\"node_id\":" + json_quoted(cfg_.node_id) +
                   ",\"window_id\":" + json_quoted(window_id_);
  p.has_data = with_data && !op.data.empty();
  if (p.has_data) md += ",\"data\":" + op.data;
  p.metadata = std::move(md);
  if (coalesce) {
    pending_[it->second] = std::move(p);
    return;
  }
  pending_index_[op.id] = pending_.size();
  pending_.push_back(std::move(p));
}

void Engine::flush_events(uint64_t unix_ms, std::vector<Outgoing> *out) {
  for (const Pending &p : pending_)
    emit_claim(p.op_id, p.state, p.beats_left, p.progress, p.notes, p.metadata, unix_ms, out);
  pending_.clear();
  pending_index_.clear();
}

void Engine::emit_claim(std::string_view task, std::string_view state, int32_t beats_left, double progress,
                        std::string_view notes, std::string_view metadata, uint64_t unix_ms,
                        std::vector<Outgoing> *out) {
  const std::string hlc = hlc_.next(unix_ms);
  StatusClaim c;
  c.agent_id = cfg_.agent_id;
  c.task_id = task;
  c.beat_index = current_beat_;
  c.state = state;
  c.beats_left = beats_left;
  c.progress = progress;
  c.notes = notes;
  c.hlc = hlc;
  c.metadata_members = metadata;
  Outgoing o;
  o.payload.reserve(384);
  append_status_claim(&o.payload, c);
  out->push_back(std::move(o));
  ++stats_.claims_built;
}

// ---------------------------------------------------------------------------------------------
// Beats

FrameVerdict Engine::on_frame(std::string_view json, uint64_t mono_ms, uint64_t unix_ms, std::vector<Outgoing> *out,
                              std::string *why) {
  bool legacy = false;
  auto f = parse_beat_frame(json, why, &legacy);
  if (!f) {
    // A legacy {bar, beat} frame cannot be placed on the v1 beat_index line (see wire.hpp), so it is
    // ignored like an invalid one, but counted apart: it means an old pulse is still on the subject.
    ++(legacy ? stats_.frames_legacy : stats_.frames_invalid);
    return legacy ? FrameVerdict::legacy : FrameVerdict::invalid;
  }
  if (f->cluster_id != cfg_.cluster_id) {
    ++stats_.frames_wrong_cluster;
    if (why != nullptr) *why = "frame for cluster " + f->cluster_id;
    return FrameVerdict::wrong_cluster;
  }
  if (have_real_ && f->beat_index <= last_real_index_) {
    // Out of order, duplicated or replayed: never moves the beat backwards.
    ++stats_.frames_stale;
    if (why != nullptr) *why = "beat " + std::to_string(f->beat_index) + " is not after " + std::to_string(last_real_index_);
    return FrameVerdict::stale;
  }
  hlc_.observe(f->hlc, unix_ms);
  if (last_frame_tempo_ > 0 && !tempo_change_within_limit(last_frame_tempo_, f->tempo_bpm)) {
    // BACKBEAT-REQ-004 limits a tempo change to 10 %. The frame is still accepted: the pulse leader
    // is authoritative (a new leader with another configuration, an operator's override), and
    // refusing its tempo would leave this agent out of step with everyone else for good. The jump is
    // counted and reported instead; the tempo measurement restarts at the new tempo.
    ++stats_.tempo_jumps;
    last_jump_ = TempoJump{last_frame_tempo_, f->tempo_bpm, f->beat_index};
    ring_count_ = 0;
  }
  last_frame_tempo_ = f->tempo_bpm;
  if (!have_real_) {
    // The first real frame is authoritative for the numbering: until now beats were provisional
    // (wall-clock based, or derived locally). Rebase the operations so their beat counts carry over,
    // and process this frame even if its index is below the provisional one.
    const int64_t delta = f->beat_index - 1 - current_beat_;
    for (auto &[id, op] : ops_)
      if (!op.provisional_start) op.start_beat += delta;
    current_beat_ = f->beat_index - 1;
  }
  have_real_ = true;
  last_real_index_ = f->beat_index;
  if (degraded_) {
    degraded_ = false;
    ++stats_.recoveries;
    ring_count_ = 0;  // the gap would distort the measurement
  }
  last_arrival_mono_ = mono_ms;
  record_arrival(f->beat_index, mono_ms);
  if (have_beat_ && f->beat_index <= current_beat_) {
    // Locally derived beats ran ahead of the returning pulse: in step again, nothing new to process.
    tempo_ = f->tempo_bpm;
    return FrameVerdict::synced;
  }
  on_beat(*f, BeatSource::remote, mono_ms, unix_ms, out);
  return FrameVerdict::processed;
}

void Engine::record_arrival(int64_t index, uint64_t mono_ms) {
  if (ring_count_ > 0) {
    const auto &last = ring_[(ring_head_ + ring_.size() - 1) % ring_.size()];
    if (index <= last.first || mono_ms < last.second) ring_count_ = 0;
  }
  ring_[ring_head_] = {index, mono_ms};
  ring_head_ = (ring_head_ + 1) % ring_.size();
  if (ring_count_ < ring_.size()) ++ring_count_;
  measure();
}

void Engine::measure() {
  if (ring_count_ < 2) {
    measured_bpm_ = 0;
    return;
  }
  const auto &newest = ring_[(ring_head_ + ring_.size() - 1) % ring_.size()];
  const auto &oldest = ring_[(ring_head_ + ring_.size() - ring_count_) % ring_.size()];
  const double beats = static_cast<double>(newest.first - oldest.first);
  const double minutes = static_cast<double>(newest.second - oldest.second) / 60000.0;
  measured_bpm_ = minutes > 0 ? beats / minutes : 0;
}

void Engine::on_beat(const BeatFrame &f, BeatSource src, uint64_t mono_ms, uint64_t unix_ms, std::vector<Outgoing> *out) {
  if (have_beat_ && f.beat_index > current_beat_ + 1) stats_.beats_skipped += static_cast<uint64_t>(f.beat_index - current_beat_ - 1);
  if (!have_beat_) {
    // Operations started before the first beat count from this one.
    for (auto &[id, op] : ops_)
      if (op.provisional_start) {
        op.start_beat = f.beat_index;
        op.provisional_start = false;
      }
  }
  current_beat_ = f.beat_index;
  have_beat_ = true;
  last_beat_mono_ = mono_ms;
  tempo_ = f.tempo_bpm;
  window_id_ = f.window_id;
  ++beats_processed_;
  switch (src) {
    case BeatSource::remote: ++stats_.beats_remote; break;
    case BeatSource::local: ++stats_.beats_local; break;
    case BeatSource::pulse: ++stats_.beats_pulse; break;
  }
  {
    char tempo[32];
    std::snprintf(tempo, sizeof tempo, "%g", f.tempo_bpm);
    beat_log_.push_back("BACKBEAT beat received - beat=" + std::to_string(f.beat_index) + " phase=" +
                        phase_name(f.phase) + " tempo=" + tempo + " window=" + f.window_id);
  }
  // Events queued since the last flush go first, so a receiver sees every operation's claims in order.
  flush_events(unix_ms, out);
  out->reserve(out->size() + active_ + 1);
  std::string notes, md;
  for (auto &[id, op] : ops_) {
    if (op.finished) continue;
    const int64_t passed = std::max<int64_t>(0, current_beat_ - op.start_beat);
    const int64_t left = std::max<int64_t>(0, static_cast<int64_t>(op.estimated_beats) - passed);
    const double progress = std::min(1.0, static_cast<double>(passed) / op.estimated_beats);
    notes = op_notes(op);
    md.clear();
    md += "\"op_type\":\"";
    md += op.type;
    md += "\",\"phase\":\"";
    md += op_phase_name(op.phase);
    md += "\",\"peers\":";
    append_int(&md, op.peer_count);
    md += ",\"beats_passed\":";
    append_int(&md, passed);
    md += ",\"window_id\":\"";
    md += window_id_;
    md += '"';
    if (passed > static_cast<int64_t>(op.estimated_beats)) {
      if (!op.overrun) {
        op.overrun = true;
        ++stats_.overruns;
      }
      md += ",\"over_budget_beats\":";
      append_int(&md, passed - op.estimated_beats);
    }
    if (degraded_) md += ",\"local_degradation\":true";
    emit_claim(op.id, "executing", static_cast<int32_t>(left), progress, notes, md, unix_ms, out);
  }
  if (cfg_.health_every > 0 && beats_processed_ % static_cast<uint64_t>(cfg_.health_every) == 0) {
    const char *state = errors_since_health_ ? "failed" : (active_ > 0 ? "executing" : "idle");
    char tempo[32];
    std::snprintf(tempo, sizeof tempo, "%g", tempo_);
    std::string n = std::string("CHORUS P2P ") + (errors_since_health_ ? "degraded" : "healthy") +
                    ": connected=" + (connected_ ? "true" : "false") + ", operations=" + std::to_string(active_) +
                    ", tempo=" + tempo + " BPM, node=" + cfg_.node_id;
    std::string hmd = "\"window_id\":" + json_quoted(window_id_) + ",\"local_degradation\":" + (degraded_ ? "true" : "false");
    emit_claim(kHealthTask, state, 0, 1.0, n, hmd, unix_ms, out);
    ++stats_.health_claims;
    errors_since_health_ = false;
  }
  if (f.downbeat) {
    beat_log_.push_back("BACKBEAT downbeat - new bar started - beat=" + std::to_string(f.beat_index) +
                        " window=" + f.window_id);
    for (auto it = ops_.begin(); it != ops_.end();) {
      if (it->second.finished) {
        it = ops_.erase(it);
        ++stats_.cleaned_up;
      } else {
        ++it;
      }
    }
    beat_log_.push_back("BACKBEAT operations cleanup check - active: " + std::to_string(active_));
  }
  // Bounded: a caller that never takes the lines keeps only the newest.
  constexpr size_t kBeatLogMax = 64;
  if (beat_log_.size() > kBeatLogMax)
    beat_log_.erase(beat_log_.begin(), beat_log_.begin() + static_cast<std::ptrdiff_t>(beat_log_.size() - kBeatLogMax));
}

std::vector<std::string> Engine::take_beat_log() {
  std::vector<std::string> lines;
  lines.swap(beat_log_);
  return lines;
}

BeatFrame Engine::make_frame(int64_t index, uint64_t unix_ms) {
  const int64_t bar = std::max<int64_t>(1, cfg_.bar_length);
  const int64_t pos = index % bar;
  BeatFrame f;
  f.cluster_id = cfg_.cluster_id;
  f.beat_index = index;
  f.downbeat = pos == 0;
  // A bar is planned, executed and reviewed in thirds; the deadline is the end of this beat's third.
  const int64_t third = std::max<int64_t>(1, (bar + 2) / 3);
  const int64_t seg = std::min<int64_t>(2, pos / third);
  f.phase = seg == 0 ? BeatPhase::plan : seg == 1 ? BeatPhase::execute : BeatPhase::review;
  const int64_t seg_end = std::min(bar, (seg + 1) * third);
  f.deadline_at = rfc3339(unix_ms + static_cast<uint64_t>(static_cast<double>(seg_end - pos) * period_ms()));
  f.hlc = hlc_.next(unix_ms);
  f.tempo_bpm = std::round(tempo_ * 10.0) / 10.0;
  f.window_id = window_id_for(cfg_.cluster_id, index / bar);
  f.pulse_version = "chorus-backbeat/1";
  return f;
}

BeatFrame Engine::next_pulse_frame(int64_t index, uint64_t unix_ms) {
  const int64_t bar = std::max<int64_t>(1, cfg_.bar_length);
  if (index % bar == 0 && tempo_ != cfg_.tempo_bpm) tempo_ = next_tempo_step(tempo_, cfg_.tempo_bpm);
  return make_frame(index, unix_ms);
}

void Engine::pulse_beat(const BeatFrame &f, uint64_t mono_ms, uint64_t unix_ms, std::vector<Outgoing> *out) {
  if (have_real_ && f.beat_index <= last_real_index_) return;
  have_real_ = true;
  last_real_index_ = f.beat_index;
  last_frame_tempo_ = f.tempo_bpm;
  last_arrival_mono_ = mono_ms;
  record_arrival(f.beat_index, mono_ms);
  if (have_beat_ && f.beat_index <= current_beat_) return;
  on_beat(f, BeatSource::pulse, mono_ms, unix_ms, out);
}

void Engine::set_pulsing(bool on, uint64_t mono_ms) noexcept {
  if (on && !pulsing_) {
    if (degraded_) {
      degraded_ = false;
      ++stats_.recoveries;
    }
    // Taking over a running cluster keeps its tempo and moves toward ours in limited steps; with
    // no pulse ever heard, there is no cluster tempo to respect.
    if (!have_real_) tempo_ = cfg_.tempo_bpm;
  }
  if (!on && pulsing_) last_arrival_mono_ = mono_ms;  // a new listener gets the full grace period
  pulsing_ = on;
}

void Engine::tick(uint64_t mono_ms, uint64_t unix_ms, std::vector<Outgoing> *out) {
  if (pulsing_) return;
  const double period = period_ms();
  if (!degraded_) {
    const auto silence = static_cast<double>(mono_ms - std::min(mono_ms, last_arrival_mono_));
    if (silence <= cfg_.degrade_after_beats * period) return;
    degraded_ = true;
    ++stats_.degradations;
    ring_count_ = 0;
    measured_bpm_ = 0;
    local_next_due_ = mono_ms;  // the first derived beat now, then one per period
    if (!have_beat_) current_beat_ = static_cast<int64_t>(static_cast<double>(unix_ms) / period) - 1;
  }
  int64_t n = 0;
  while (mono_ms >= local_next_due_) {
    if (++n > cfg_.max_catch_up) {  // suspended for a long time: skip ahead instead of flooding
      const auto behind = static_cast<uint64_t>(static_cast<double>(mono_ms - local_next_due_) / period);
      current_beat_ += static_cast<int64_t>(behind);
      stats_.beats_skipped += behind;
      local_next_due_ += static_cast<uint64_t>(static_cast<double>(behind + 1) * period);
      break;
    }
    BeatFrame f = make_frame(current_beat_ + 1, unix_ms);
    f.tempo_bpm = tempo_;
    on_beat(f, BeatSource::local, mono_ms, unix_ms, out);
    local_next_due_ += static_cast<uint64_t>(std::max(1.0, period));
  }
}

// ---------------------------------------------------------------------------------------------

EngineSnapshot Engine::snapshot() const {
  EngineSnapshot s;
  s.current_beat = current_beat_;
  s.have_beat = have_beat_;
  s.tempo_bpm = tempo_;
  s.measured_bpm = measured_bpm_;
  s.degraded = degraded_;
  s.active_operations = active_;
  s.tracked_operations = ops_.size();
  s.window_id = window_id_;
  if (ring_count_ < 3 || measured_bpm_ <= 0) {
    s.drift = CHORUS_BACKBEAT_DRIFT_UNKNOWN;
  } else {
    const double rel = std::fabs(measured_bpm_ - tempo_) / tempo_;
    s.drift = rel <= 0.01 ? CHORUS_BACKBEAT_DRIFT_ACCEPTABLE
              : rel <= 0.05 ? CHORUS_BACKBEAT_DRIFT_MODERATE
                            : CHORUS_BACKBEAT_DRIFT_SEVERE;
  }
  return s;
}

std::vector<const Operation *> Engine::operations() const {
  std::vector<const Operation *> v;
  v.reserve(ops_.size());
  for (const auto &[id, op] : ops_) v.push_back(&op);
  std::sort(v.begin(), v.end(), [](const Operation *a, const Operation *b) { return a->seq < b->seq; });
  return v;
}

}  // namespace chorus::backbeat
