#include <gtest/gtest.h>

#include <functional>
#include <set>

#include <chorus/plugin.hpp>
#include <chorus/services/backbeat_v1.h>
#include <nlohmann/json.hpp>

#include "engine.hpp"

using namespace chorus::backbeat;
using nlohmann::json;

namespace {

constexpr uint64_t kUnix = 1700000000000;  // fixed wall clock for determinism

EngineConfig cfg(double tempo = 600) {  // 600 BPM: 100 ms a beat
  EngineConfig c;
  c.cluster_id = "test";
  c.agent_id = "chorus-a1";
  c.node_id = "node-1";
  c.tempo_bpm = tempo;
  c.bar_length = 4;
  return c;
}

std::string frame(int64_t idx, double tempo = 600, const std::string &cluster = "test", int64_t bar = 4) {
  BeatFrame f;
  f.cluster_id = cluster;
  f.beat_index = idx;
  f.downbeat = idx % bar == 0;
  f.phase = BeatPhase::execute;
  f.hlc = "0001:0001:0001";
  f.deadline_at = rfc3339(kUnix);
  f.tempo_bpm = tempo;
  f.window_id = window_id_for(cluster, idx / bar);
  return serialize_beat_frame(f);
}

std::vector<json> parse_all(const std::vector<Outgoing> &out) {
  std::vector<json> v;
  for (const auto &o : out) {
    EXPECT_FALSE(o.is_frame);
    std::string why;
    EXPECT_TRUE(validate_status_claim(o.payload, &why)) << why << ": " << o.payload;
    v.push_back(json::parse(o.payload));
  }
  return v;
}

chorus_status code_of(const std::function<void()> &f) {
  try {
    f();
    return CHORUS_OK;
  } catch (const chorus::Error &e) {
    return e.code();
  }
}

}  // namespace

TEST(EngineOps, LifecycleErrors) {
  Engine e(cfg(), 0, kUnix);
  EXPECT_EQ(code_of([&] { e.start_op("op-1", "dht_store", 3, "", kUnix); }), CHORUS_OK);
  EXPECT_EQ(code_of([&] { e.start_op("op-1", "dht_store", 3, "", kUnix); }), CHORUS_E_EXISTS);
  EXPECT_EQ(code_of([&] { e.start_op("bad id", "dht_store", 3, "", kUnix); }), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(code_of([&] { e.start_op("", "dht_store", 3, "", kUnix); }), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(code_of([&] { e.start_op("op-2", "gossip", 3, "", kUnix); }), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(code_of([&] { e.start_op("op-2", "election", 0, "", kUnix); }), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(code_of([&] { e.start_op("op-2", "election", 1001, "", kUnix); }), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(code_of([&] { e.start_op("op-2", "election", 3, "{not json", kUnix); }), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(code_of([&] { e.update_phase("nope", CHORUS_BACKBEAT_PHASE_CONNECTING, 1); }), CHORUS_E_NOT_FOUND);
  EXPECT_EQ(code_of([&] { e.update_phase("op-1", 9, 1); }), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(code_of([&] { e.update_phase("op-1", CHORUS_BACKBEAT_PHASE_COMPLETED, 1); }), CHORUS_E_INVALID_ARG);
  EXPECT_EQ(code_of([&] { e.complete_op("nope", 1); }), CHORUS_E_NOT_FOUND);
  EXPECT_EQ(code_of([&] { e.fail_op("nope", "x"); }), CHORUS_E_NOT_FOUND);
  EXPECT_EQ(code_of([&] { e.complete_op("op-1", 2); }), CHORUS_OK);
  // Finished: no second completion, no update; the id may be reused.
  EXPECT_EQ(code_of([&] { e.complete_op("op-1", 2); }), CHORUS_E_NOT_FOUND);
  EXPECT_EQ(code_of([&] { e.fail_op("op-1", "late"); }), CHORUS_E_NOT_FOUND);
  EXPECT_EQ(code_of([&] { e.update_phase("op-1", CHORUS_BACKBEAT_PHASE_EXECUTING, 1); }), CHORUS_E_NOT_FOUND);
  EXPECT_EQ(code_of([&] { e.start_op("op-1", "dht_store", 3, "", kUnix); }), CHORUS_OK);
  EXPECT_EQ(e.snapshot().active_operations, 1u);
}

TEST(EngineOps, EventClaimsAreBatchedAndCoalesced) {
  Engine e(cfg(), 0, kUnix);
  e.start_op("a", "election", 5, R"({"candidates":3})", kUnix);
  e.update_phase("a", CHORUS_BACKBEAT_PHASE_CONNECTING, 2);
  e.update_phase("a", CHORUS_BACKBEAT_PHASE_NEGOTIATING, 3);
  e.start_op("b", "dht_store", 2, "", kUnix);
  e.complete_op("b", 4);
  std::vector<Outgoing> out;
  e.flush_events(kUnix, &out);
  auto claims = parse_all(out);
  // Per operation: its start claim, never merged away, then its latest state (the two updates of
  // "a" coalesce into the newer one).
  ASSERT_EQ(claims.size(), 4u);
  EXPECT_EQ(claims[0]["task_id"], "a");
  EXPECT_EQ(claims[0]["state"], "executing");
  EXPECT_EQ(claims[0]["metadata"]["phase"], "started");
  EXPECT_EQ(claims[0]["metadata"]["data"]["candidates"], 3);
  EXPECT_EQ(claims[1]["task_id"], "a");
  EXPECT_EQ(claims[1]["state"], "executing");
  EXPECT_EQ(claims[1]["beats_left"], 5);
  EXPECT_EQ(claims[1]["metadata"]["phase"], "negotiating");
  EXPECT_EQ(claims[1]["metadata"]["peers"], 3);
  EXPECT_FALSE(claims[1]["metadata"].contains("data"));
  EXPECT_EQ(claims[1]["notes"], "P2P election: negotiating (peers: 3, node: node-1)");
  EXPECT_EQ(claims[2]["task_id"], "b");
  EXPECT_EQ(claims[2]["metadata"]["phase"], "started");
  EXPECT_EQ(claims[3]["task_id"], "b");
  EXPECT_EQ(claims[3]["state"], "completed");
  EXPECT_EQ(claims[3]["progress"], 1.0);
  EXPECT_EQ(claims[3]["beats_left"], 0);
  EXPECT_FALSE(e.has_pending_events());
}

TEST(EngineOps, RestartAfterFinishKeepsTheTerminalClaim) {
  Engine e(cfg(), 0, kUnix);
  e.start_op("a", "election", 5, "", kUnix);
  e.fail_op("a", "quorum not reached");
  e.start_op("a", "election", 5, "", kUnix);
  std::vector<Outgoing> out;
  e.flush_events(kUnix, &out);
  auto claims = parse_all(out);
  ASSERT_EQ(claims.size(), 3u);  // start, failed, the second start
  EXPECT_EQ(claims[0]["state"], "executing");
  EXPECT_EQ(claims[0]["metadata"]["phase"], "started");
  EXPECT_EQ(claims[1]["state"], "failed");
  EXPECT_EQ(claims[1]["progress"], 0.0);
  EXPECT_EQ(claims[1]["notes"], "P2P operation failed: quorum not reached (type: election)");
  EXPECT_EQ(claims[2]["state"], "executing");
}

TEST(EngineBeats, LogsTheSeedsBeatDownbeatAndCleanupLines) {
  Engine e(cfg(), 0, kUnix);
  std::vector<Outgoing> out;
  e.start_op("done", "dht_store", 2, "", kUnix);
  e.complete_op("done", 1);
  ASSERT_EQ(e.on_frame(frame(100), 0, kUnix, &out), FrameVerdict::processed);  // 100 % 4 == 0: a downbeat
  const auto lines = e.take_beat_log();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].rfind("BACKBEAT beat received - beat=100 phase=", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find(" window="), std::string::npos) << lines[0];
  EXPECT_EQ(lines[1].rfind("BACKBEAT downbeat - new bar started - beat=100 window=", 0), 0u) << lines[1];
  EXPECT_EQ(lines[2], "BACKBEAT operations cleanup check - active: 0");
  EXPECT_TRUE(e.take_beat_log().empty());  // taken once
  ASSERT_EQ(e.on_frame(frame(101), 0, kUnix, &out), FrameVerdict::processed);
  EXPECT_EQ(e.take_beat_log().size(), 1u);  // not a downbeat: the beat line only
}

TEST(EngineBeats, ClaimPerActiveOperationEveryBeatWithBudgetMath) {
  Engine e(cfg(), 0, kUnix);
  std::vector<Outgoing> out;
  ASSERT_EQ(e.on_frame(frame(100), 0, kUnix, &out), FrameVerdict::processed);
  out.clear();
  e.start_op("op", "pubsub_sync", 2, "", kUnix);
  e.start_op("done", "peer_discovery", 2, "", kUnix);
  e.complete_op("done", 1);
  std::vector<json> per_beat;
  for (int64_t b = 101; b <= 104; ++b) {
    out.clear();
    ASSERT_EQ(e.on_frame(frame(b), static_cast<uint64_t>(b - 100) * 100, kUnix, &out), FrameVerdict::processed);
    for (auto &c : parse_all(out))
      if (c["task_id"] == "op" && c["metadata"].contains("beats_passed")) per_beat.push_back(c);  // beat claims
  }
  ASSERT_EQ(per_beat.size(), 4u);  // finished operations get no beat claims
  EXPECT_EQ(per_beat[0]["beats_left"], 1);
  EXPECT_DOUBLE_EQ(per_beat[0]["progress"].get<double>(), 0.5);
  EXPECT_EQ(per_beat[1]["beats_left"], 0);
  EXPECT_EQ(per_beat[1]["progress"], 1.0);
  EXPECT_EQ(per_beat[2]["beats_left"], 0);  // never negative
  EXPECT_EQ(per_beat[2]["progress"], 1.0);  // never above 1
  EXPECT_EQ(per_beat[2]["metadata"]["over_budget_beats"], 1);
  EXPECT_EQ(per_beat[3]["beat_index"], 104);
  EXPECT_EQ(e.stats().overruns, 1u);
  // Beat 104 is a downbeat (bar of 4): the finished operation was cleaned up.
  EXPECT_EQ(e.snapshot().tracked_operations, 1u);
}

TEST(EngineBeats, HealthClaimEveryEightBeats) {
  Engine e(cfg(), 0, kUnix);
  int health = 0;
  std::vector<json> hc;
  for (int64_t b = 1; b <= 16; ++b) {
    std::vector<Outgoing> out;
    e.on_frame(frame(b), static_cast<uint64_t>(b) * 100, kUnix, &out);
    for (auto &c : parse_all(out))
      if (c["task_id"] == "chorus-p2p-health") {
        ++health;
        hc.push_back(c);
      }
  }
  EXPECT_EQ(health, 2);
  EXPECT_EQ(hc[0]["state"], "idle");  // no operations: CHORUS's "waiting"
  EXPECT_EQ(hc[0]["progress"], 1.0);
  EXPECT_EQ(hc[0]["beats_left"], 0);
  e.start_op("x", "election", 3, "", kUnix);
  e.note_error();
  for (int64_t b = 17; b <= 24; ++b) {
    std::vector<Outgoing> out;
    e.on_frame(frame(b), static_cast<uint64_t>(b) * 100, kUnix, &out);
    for (auto &c : parse_all(out))
      if (c["task_id"] == "chorus-p2p-health") {
        EXPECT_EQ(c["state"], "failed");
      }
  }
}

TEST(EngineBeats, BadAndOutOfOrderFramesAreCountedAndIgnored) {
  Engine e(cfg(), 0, kUnix);
  std::vector<Outgoing> out;
  EXPECT_EQ(e.on_frame("garbage", 0, kUnix, &out), FrameVerdict::invalid);
  EXPECT_EQ(e.on_frame(frame(10, 100000), 0, kUnix, &out), FrameVerdict::invalid);  // absurd tempo
  EXPECT_EQ(e.on_frame(frame(10, 600, "other"), 0, kUnix, &out), FrameVerdict::wrong_cluster);
  EXPECT_EQ(e.on_frame(frame(10), 0, kUnix, &out), FrameVerdict::processed);
  EXPECT_EQ(e.on_frame(frame(10), 10, kUnix, &out), FrameVerdict::stale);  // duplicate
  EXPECT_EQ(e.on_frame(frame(9), 20, kUnix, &out), FrameVerdict::stale);   // from the past
  EXPECT_EQ(e.on_frame(frame(13), 30, kUnix, &out), FrameVerdict::processed);
  EXPECT_EQ(e.current_beat(), 13);
  EXPECT_EQ(e.stats().frames_invalid, 2u);
  EXPECT_EQ(e.stats().frames_stale, 2u);
  EXPECT_EQ(e.stats().frames_wrong_cluster, 1u);
  EXPECT_EQ(e.stats().beats_skipped, 2u);
  EXPECT_EQ(e.stats().beats_remote, 2u);
}

TEST(EngineTempo, MeasuredTempoAndDriftClassification) {
  Engine e(cfg(600), 0, kUnix);
  std::vector<Outgoing> out;
  EXPECT_EQ(e.snapshot().drift, CHORUS_BACKBEAT_DRIFT_UNKNOWN);
  for (int64_t b = 0; b < 20; ++b) e.on_frame(frame(b), static_cast<uint64_t>(b) * 100, kUnix, &out);
  EXPECT_NEAR(e.snapshot().measured_bpm, 600, 0.01);
  EXPECT_EQ(e.snapshot().drift, CHORUS_BACKBEAT_DRIFT_ACCEPTABLE);

  Engine slow(cfg(600), 0, kUnix);  // frames claim 600 BPM but arrive every 103 ms (~582.5 BPM, 2.9 %)
  for (int64_t b = 0; b < 20; ++b) slow.on_frame(frame(b), static_cast<uint64_t>(b) * 103, kUnix, &out);
  EXPECT_EQ(slow.snapshot().drift, CHORUS_BACKBEAT_DRIFT_MODERATE);

  Engine bad(cfg(600), 0, kUnix);  // every 150 ms: 400 BPM
  for (int64_t b = 0; b < 20; ++b) bad.on_frame(frame(b), static_cast<uint64_t>(b) * 150, kUnix, &out);
  EXPECT_NEAR(bad.snapshot().measured_bpm, 400, 0.5);
  EXPECT_EQ(bad.snapshot().drift, CHORUS_BACKBEAT_DRIFT_SEVERE);
}

TEST(EngineDegradation, DerivesBeatsWhenThePulseStopsAndResumes) {
  Engine e(cfg(600), 0, kUnix);
  std::vector<Outgoing> out;
  for (int64_t b = 1; b <= 3; ++b) e.on_frame(frame(b), static_cast<uint64_t>(b) * 100, kUnix, &out);
  e.start_op("op", "dht_store", 10, "", kUnix);
  // Silence: 2 beats (200 ms) of grace after the last frame at t=300.
  e.tick(450, kUnix, &out);
  EXPECT_FALSE(e.snapshot().degraded);
  out.clear();
  e.tick(520, kUnix, &out);
  EXPECT_TRUE(e.snapshot().degraded);
  EXPECT_EQ(e.current_beat(), 4);  // first derived beat immediately
  auto claims = parse_all(out);
  bool op_claim = false;
  for (auto &c : claims)
    if (c["task_id"] == "op" && c["metadata"].contains("beats_passed")) {
      op_claim = true;
      EXPECT_EQ(c["metadata"]["local_degradation"], true);
      EXPECT_EQ(c["beat_index"], 4);
    }
  EXPECT_TRUE(op_claim);
  e.tick(820, kUnix, &out);  // three more periods
  EXPECT_EQ(e.current_beat(), 7);
  EXPECT_EQ(e.stats().beats_local, 4u);
  EXPECT_EQ(e.stats().degradations, 1u);
  // The pulse returns behind the derived beats: in sync, nothing re-processed, beat never goes back.
  EXPECT_EQ(e.on_frame(frame(6), 850, kUnix, &out), FrameVerdict::synced);
  EXPECT_FALSE(e.snapshot().degraded);
  EXPECT_EQ(e.current_beat(), 7);
  EXPECT_EQ(e.on_frame(frame(8), 950, kUnix, &out), FrameVerdict::processed);
  EXPECT_EQ(e.current_beat(), 8);
  EXPECT_EQ(e.stats().recoveries, 1u);
}

TEST(EngineDegradation, NoPulseAtAllStartsDegradedWithWallClockBeats) {
  Engine e(cfg(600), 1000, kUnix);
  std::vector<Outgoing> out;
  e.tick(1300, kUnix, &out);
  EXPECT_TRUE(e.snapshot().degraded);
  EXPECT_EQ(e.current_beat(), static_cast<int64_t>(kUnix / 100));
}

TEST(EngineDegradation, AForeignPulseNumberingIsAdoptedNotIgnored) {
  // Beats derived locally from the wall clock (huge indices), then a pulse numbering from 42.
  Engine e(cfg(600), 0, kUnix);
  std::vector<Outgoing> out;
  e.tick(300, kUnix, &out);
  ASSERT_TRUE(e.snapshot().degraded);
  e.start_op("op", "dht_store", 10, "", kUnix);
  e.tick(500, kUnix, &out);  // two more derived beats: the op is 2 beats in
  out.clear();
  EXPECT_EQ(e.on_frame(frame(42), 550, kUnix, &out), FrameVerdict::processed);
  EXPECT_EQ(e.current_beat(), 42);
  EXPECT_FALSE(e.snapshot().degraded);
  for (auto &c : parse_all(out))
    if (c["task_id"] == "op" && c["metadata"].contains("beats_passed")) {
      EXPECT_EQ(c["beats_left"], 7);
    }
  EXPECT_EQ(e.on_frame(frame(43), 650, kUnix, &out), FrameVerdict::processed);
}

TEST(EngineDegradation, LongSuspensionSkipsAheadInsteadOfFlooding) {
  Engine e(cfg(600), 0, kUnix);
  std::vector<Outgoing> out;
  e.on_frame(frame(1), 0, kUnix, &out);
  e.tick(300, kUnix, &out);
  ASSERT_TRUE(e.snapshot().degraded);
  out.clear();
  e.tick(300 + 100000, kUnix, &out);  // 1000 periods later
  EXPECT_LE(out.size(), 20u);
  EXPECT_GE(e.current_beat(), 1000);
}

TEST(EngineBeats, FirstBeatRebasesOperationsStartedBeforeIt) {
  Engine e(cfg(600), 0, kUnix);
  e.start_op("early", "election", 3, "", kUnix);
  std::vector<Outgoing> out;
  e.on_frame(frame(5), 0, kUnix, &out);
  out.clear();
  e.on_frame(frame(6), 100, kUnix, &out);
  for (auto &c : parse_all(out))
    if (c["task_id"] == "early") {
      EXPECT_EQ(c["beats_left"], 2);
    }
}

TEST(EngineLoad, ThousandOperationsOverBeatsAllComplete) {
  Engine e(cfg(600), 0, kUnix);
  std::vector<Outgoing> out;
  e.on_frame(frame(1), 0, kUnix, &out);
  for (int i = 0; i < 1000; ++i) e.start_op("test-op-" + std::to_string(i), "dht_store", 5, "", kUnix);
  EXPECT_EQ(e.snapshot().active_operations, 1000u);
  for (int64_t b = 2; b <= 4; ++b) {
    out.clear();
    e.on_frame(frame(b), static_cast<uint64_t>(b) * 100, kUnix, &out);
    EXPECT_GE(out.size(), 1000u);
  }
  for (int i = 0; i < 1000; ++i) e.complete_op("test-op-" + std::to_string(i), 5);
  EXPECT_EQ(e.snapshot().active_operations, 0u);
  out.clear();
  e.on_frame(frame(8), 800, kUnix, &out);  // downbeat
  EXPECT_EQ(e.snapshot().tracked_operations, 0u);
}

TEST(EnginePulse, FramesAreSchemaValidWithWindowPerBarAndPhases) {
  Engine e(cfg(600), 0, kUnix);
  std::set<std::string> windows;
  std::vector<std::string> phases;
  for (int64_t i = 8; i < 16; ++i) {
    BeatFrame f = e.make_frame(i, kUnix + static_cast<uint64_t>(i) * 100);
    auto back = parse_beat_frame(serialize_beat_frame(f));
    ASSERT_TRUE(back);
    EXPECT_EQ(back->downbeat, i % 4 == 0);
    windows.insert(back->window_id);
    phases.push_back(phase_name(back->phase));
  }
  EXPECT_EQ(windows.size(), 2u);
  EXPECT_EQ(phases[0], "plan");
  EXPECT_EQ(phases[2], "execute");  // a 4-beat bar: thirds of 2 beats (plan, execute)
}

// ---- BACKBEAT-REQ-004: tempo changes limited to ±10 % ----

TEST(EngineTempoLimit, StepFunctionStaysWithinTheLimitOnTheSchemaGrid) {
  EXPECT_TRUE(tempo_change_within_limit(100, 110));
  EXPECT_TRUE(tempo_change_within_limit(100, 90));
  EXPECT_FALSE(tempo_change_within_limit(100, 110.1));
  EXPECT_FALSE(tempo_change_within_limit(100, 89.9));
  EXPECT_TRUE(tempo_change_within_limit(0.5, 0.6));   // below 1 BPM one 0.1 step is the least change
  EXPECT_FALSE(tempo_change_within_limit(0.5, 0.7));
  EXPECT_DOUBLE_EQ(next_tempo_step(100, 105), 105);    // within the limit: straight to the target
  EXPECT_DOUBLE_EQ(next_tempo_step(100, 200), 110);
  EXPECT_DOUBLE_EQ(next_tempo_step(100, 50), 90);
  EXPECT_DOUBLE_EQ(next_tempo_step(2, 3), 2.2);
  EXPECT_DOUBLE_EQ(next_tempo_step(2.9, 10), 3.1);      // 3.19 rounds toward the current tempo
  EXPECT_DOUBLE_EQ(next_tempo_step(0.5, 2), 0.6);
  EXPECT_DOUBLE_EQ(next_tempo_step(0.2, 0.1), 0.1);
  // Every step of a long ramp is within the limit and on the 0.1 grid, and the ramp ends.
  for (auto [from, to] : {std::pair{0.1, 1000.0}, std::pair{1000.0, 0.1}, std::pair{2.0, 600.0}, std::pair{7.3, 7.9}}) {
    double t = from;
    int steps = 0;
    while (t != to && steps < 1000) {
      const double next = next_tempo_step(t, to);
      EXPECT_TRUE(tempo_change_within_limit(t, next)) << t << " -> " << next;
      EXPECT_TRUE(tempo_valid(next)) << next;
      EXPECT_NE(next, t);
      t = next;
      ++steps;
    }
    EXPECT_EQ(t, to) << from << " -> " << to;
  }
}

TEST(EngineTempoLimit, PulseApproachesANewTargetByAtMostTenPercentPerBar) {
  Engine e(cfg(100), 0, kUnix);  // bar of 4 beats
  std::vector<Outgoing> out;
  e.set_pulsing(true, 0);
  e.set_pulse_target(150);
  std::vector<double> tempos;
  for (int64_t i = 0; i < 24; ++i) {
    BeatFrame f = e.next_pulse_frame(i, kUnix);
    e.pulse_beat(f, static_cast<uint64_t>(i) * 600, kUnix, &out);
    tempos.push_back(f.tempo_bpm);
  }
  // Changes only on downbeats (every 4th beat), each within 10 %: 100 -> 110 -> 121 -> 133.1 -> 146.4 -> 150.
  const std::vector<double> want = {110, 121, 133.1, 146.4, 150, 150};
  for (size_t i = 0; i < tempos.size(); ++i) {
    EXPECT_DOUBLE_EQ(tempos[i], want[i / 4]) << "beat " << i;
  }
  EXPECT_EQ(e.stats().tempo_jumps, 0u);
}

TEST(EngineTempoLimit, TakingOverKeepsTheClusterTempoAndRampsToOurs) {
  Engine e(cfg(300), 0, kUnix);  // configured 300 BPM, the cluster runs at 600
  std::vector<Outgoing> out;
  ASSERT_EQ(e.on_frame(frame(10), 0, kUnix, &out), FrameVerdict::processed);
  e.set_pulsing(true, 100);
  EXPECT_DOUBLE_EQ(e.next_pulse_frame(11, kUnix).tempo_bpm, 600);  // not a downbeat: unchanged
  EXPECT_DOUBLE_EQ(e.next_pulse_frame(12, kUnix).tempo_bpm, 540);  // downbeat: one step down
  // With no cluster tempo heard, the configured one applies at once.
  Engine fresh(cfg(300), 0, kUnix);
  fresh.set_pulsing(true, 0);
  EXPECT_DOUBLE_EQ(fresh.next_pulse_frame(1, kUnix).tempo_bpm, 300);
}

TEST(EngineTempoLimit, ListenerCountsButFollowsAJumpBeyondTheLimit) {
  Engine e(cfg(600), 0, kUnix);
  std::vector<Outgoing> out;
  ASSERT_EQ(e.on_frame(frame(1, 600), 0, kUnix, &out), FrameVerdict::processed);
  ASSERT_EQ(e.on_frame(frame(2, 660), 100, kUnix, &out), FrameVerdict::processed);  // +10 %: allowed
  EXPECT_EQ(e.stats().tempo_jumps, 0u);
  ASSERT_EQ(e.on_frame(frame(3, 900), 200, kUnix, &out), FrameVerdict::processed);  // +36 %
  EXPECT_EQ(e.stats().tempo_jumps, 1u);
  EXPECT_DOUBLE_EQ(e.last_tempo_jump().from_bpm, 660);
  EXPECT_DOUBLE_EQ(e.last_tempo_jump().to_bpm, 900);
  EXPECT_EQ(e.last_tempo_jump().beat_index, 3);
  EXPECT_DOUBLE_EQ(e.snapshot().tempo_bpm, 900);  // accepted: the pulse leader is authoritative
  EXPECT_EQ(e.on_frame(frame(4, 900), 266, kUnix, &out), FrameVerdict::processed);
  EXPECT_EQ(e.stats().tempo_jumps, 1u);
  // Rejected frames never count as a tempo change.
  EXPECT_EQ(e.on_frame(frame(5, 100000), 300, kUnix, &out), FrameVerdict::invalid);
  EXPECT_EQ(e.on_frame(frame(5, 100), 300, kUnix, &out, nullptr), FrameVerdict::processed);
  EXPECT_EQ(e.stats().tempo_jumps, 2u);
}

// ---- REQ-043: legacy {bar, beat} frames ----

TEST(EngineLegacy, LegacyFramesAreCountedApartAndNeverMoveTheBeat) {
  Engine e(cfg(600), 0, kUnix);
  std::vector<Outgoing> out;
  ASSERT_EQ(e.on_frame(frame(50), 0, kUnix, &out), FrameVerdict::processed);
  std::string why;
  EXPECT_EQ(e.on_frame(R"({"bar":900,"beat":3})", 10, kUnix, &out, &why), FrameVerdict::legacy);
  EXPECT_NE(why.find("legacy"), std::string::npos) << why;
  EXPECT_EQ(e.on_frame(R"({"bar":1,"beat":0,"tempo":120,"cluster_id":"test"})", 20, kUnix, &out), FrameVerdict::legacy);
  EXPECT_EQ(e.on_frame(R"({"bar":-1,"beat":0})", 30, kUnix, &out), FrameVerdict::invalid);
  EXPECT_EQ(e.on_frame(R"({"bar":"x","beat":0})", 30, kUnix, &out), FrameVerdict::invalid);
  EXPECT_EQ(e.current_beat(), 50);
  EXPECT_EQ(e.stats().frames_legacy, 2u);
  EXPECT_EQ(e.stats().frames_invalid, 2u);
}
