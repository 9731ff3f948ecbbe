// The service worker (src/work.cpp) on the SDK's FakeHost, with fake chorus.reasoning, chorus.ucxi and
// chorus.backbeat tables that record what they are asked and answer when the test says so (from the
// test's thread or from a thread of their own, like a provider).
#include "work.hpp"

#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include <chorus/plugin.hpp>
#include <chorus/services/backbeat_v1.h>
#include <chorus/services/reasoning_v1.h>
#include <chorus/services/ucxi_v1.h>
#include <chorus/testing/fake_host.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "decision.hpp"  // plugins/ucxi: the schema the decision must pass

namespace {

using chorus::agent::TaskSpec;
using chorus::agent::WorkerOptions;
using chorus::agent::WorkResult;
using json = nlohmann::json;
using namespace std::chrono_literals;

struct FakeReasoning {
  chorus_reasoning_v1 table{};
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> requests;
  std::vector<const chorus_ai_sink *> sinks;  // call id i+1
  std::vector<uint64_t> cancelled;
  chorus_status refuse = CHORUS_OK;

  FakeReasoning() {
    table.struct_size = sizeof table;
    table.complete = [](void *self, const char *body, size_t len, const chorus_ai_sink *sink, uint64_t *id,
                        chorus_error *err) -> chorus_status {
      auto *f = static_cast<FakeReasoning *>(self);
      std::lock_guard lk(f->mu);
      if (f->refuse != CHORUS_OK) {
        chorus::set_error(err, f->refuse, "queue full");
        return f->refuse;
      }
      f->requests.emplace_back(body, len);
      f->sinks.push_back(sink);
      *id = f->sinks.size();
      f->cv.notify_all();
      return CHORUS_OK;
    };
    table.cancel = [](void *self, uint64_t id) -> chorus_status {
      auto *f = static_cast<FakeReasoning *>(self);
      std::lock_guard lk(f->mu);
      f->cancelled.push_back(id);
      f->cv.notify_all();
      return CHORUS_OK;
    };
  }
  const chorus_ai_sink *sink(size_t call) {
    std::lock_guard lk(mu);
    return sinks.at(call - 1);
  }
  void chunk(size_t call, std::string_view text) {
    const std::string j = json{{"delta", text}}.dump();
    const auto *s = sink(call);
    s->on_chunk(s->user, j.data(), j.size());
  }
  void answer(size_t call, const json &done) {
    const std::string j = done.dump();
    const auto *s = sink(call);
    s->on_done(s->user, j.data(), j.size());
  }
  void fail(size_t call, chorus_status st, std::string_view msg) {
    const auto *s = sink(call);
    s->on_error(s->user, st, msg.data(), msg.size());
  }
  bool wait_cancel(uint64_t id, std::chrono::milliseconds d) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, d, [&] { return std::find(cancelled.begin(), cancelled.end(), id) != cancelled.end(); });
  }
};

struct FakeUcxi {
  chorus_ucxi_v1 table{};
  std::mutex mu;
  std::vector<std::string> decisions;
  std::vector<std::pair<chorus_ucxi_done_fn, void *>> pending;
  FakeUcxi() {
    table.struct_size = sizeof table;
    table.publish_decision = [](void *self, const char *decision, uint32_t, chorus_ucxi_done_fn done, void *arg,
                                chorus_error *) -> chorus_status {
      auto *f = static_cast<FakeUcxi *>(self);
      std::lock_guard lk(f->mu);
      f->decisions.emplace_back(decision);
      f->pending.emplace_back(done, arg);
      return CHORUS_OK;
    };
  }
  void complete(size_t i, chorus_status st, const std::string &meta) {
    auto [fn, arg] = pending.at(i);
    chorus::ErrorBuffer err;
    if (st != CHORUS_OK) chorus::set_error(err.get(), st, "dht has no peers");
    fn(arg, st, st == CHORUS_OK ? nullptr : err.get(), st == CHORUS_OK ? meta.data() : nullptr,
       st == CHORUS_OK ? meta.size() : 0, nullptr, 0);
  }
};

struct FakeBackbeat {
  chorus_backbeat_v1 table{};
  std::mutex mu;
  std::vector<std::string> calls;
  FakeBackbeat() {
    table.struct_size = sizeof table;
    table.start_operation = [](void *self, const char *id, size_t id_len, const char *type, size_t type_len,
                               uint32_t beats, const char *data, size_t data_len, chorus_error *) -> chorus_status {
      auto *f = static_cast<FakeBackbeat *>(self);
      EXPECT_TRUE(json::accept(std::string_view(data, data_len)));
      std::lock_guard lk(f->mu);
      f->calls.push_back("start " + std::string(id, id_len) + " " + std::string(type, type_len) + " " +
                         std::to_string(beats));
      return CHORUS_OK;
    };
    table.update_phase = [](void *self, const char *id, size_t id_len, int32_t phase, uint32_t,
                            chorus_error *) -> chorus_status {
      auto *f = static_cast<FakeBackbeat *>(self);
      std::lock_guard lk(f->mu);
      f->calls.push_back("phase " + std::string(id, id_len) + " " + std::to_string(phase));
      return CHORUS_OK;
    };
    table.complete_operation = [](void *self, const char *id, size_t id_len, uint32_t, chorus_error *) -> chorus_status {
      auto *f = static_cast<FakeBackbeat *>(self);
      std::lock_guard lk(f->mu);
      f->calls.push_back("complete " + std::string(id, id_len));
      return CHORUS_OK;
    };
    table.fail_operation = [](void *self, const char *id, size_t id_len, const char *why, size_t why_len,
                              chorus_error *) -> chorus_status {
      auto *f = static_cast<FakeBackbeat *>(self);
      std::lock_guard lk(f->mu);
      f->calls.push_back("fail " + std::string(id, id_len) + " " + std::string(why, why_len));
      return CHORUS_OK;
    };
    table.get_status = [](void *, chorus_backbeat_status *out) -> chorus_status {
      out->current_tempo_bpm = 120;  // a beat every 500 ms
      return CHORUS_OK;
    };
  }
  std::vector<std::string> snapshot() {
    std::lock_guard lk(mu);
    return calls;
  }
};

// What the worker told the owner of a task.
struct Recorder {
  std::mutex mu;
  std::vector<std::pair<int, std::string>> progress;
  std::vector<WorkResult> done;
  std::vector<std::thread::id> threads;
  bool progress_after_done = false;
  chorus::agent::ProgressFn on_progress() {
    return [this](int pct, std::string note) {
      std::lock_guard lk(mu);
      if (!done.empty()) progress_after_done = true;
      progress.emplace_back(pct, std::move(note));
      threads.push_back(std::this_thread::get_id());
    };
  }
  chorus::agent::DoneFn on_done() {
    return [this](WorkResult r) {
      std::lock_guard lk(mu);
      done.push_back(std::move(r));
      threads.push_back(std::this_thread::get_id());
    };
  }
  size_t dones() {
    std::lock_guard lk(mu);
    return done.size();
  }
};

TaskSpec task(std::string id, uint32_t attempt = 1) {
  TaskSpec t;
  t.task_id = std::move(id);
  t.attempt = attempt;
  t.title = "Write the release notes";
  t.description = "Summarise the changes since 1.2.";
  t.required_capabilities = {"general"};
  t.project = "chorus";
  return t;
}

class WorkerTest : public ::testing::Test {
 protected:
  WorkerOptions options(std::chrono::milliseconds simulated = 1000ms) {
    WorkerOptions o;
    o.agent_id = "agent-1";
    o.role = "developer";
    o.project = "chorus";
    o.simulated_work = simulated;
    o.llm_timeout = 5000ms;
    return o;
  }
  void provide_reasoning() { fake.provide(CHORUS_REASONING_SERVICE, 1, 0, &reasoning.table, &reasoning, "reasoning"); }
  void provide_ucxi() { fake.provide(CHORUS_UCXI_SERVICE, 1, 0, &ucxi.table, &ucxi, "ucxi"); }
  void provide_backbeat() { fake.provide(CHORUS_BACKBEAT_SERVICE, 1, 0, &backbeat.table, &backbeat, "backbeat"); }
  void TearDown() override {
    if (worker) worker->shutdown();
    EXPECT_EQ(fake.held_refs(), 0u);
    EXPECT_TRUE(fake.violations().empty());
  }

  chorus::testing::FakeHost fake;
  chorus::Host host{fake.api(), fake.ctx()};
  FakeReasoning reasoning;
  FakeUcxi ucxi;
  FakeBackbeat backbeat;
  Recorder rec;
  std::unique_ptr<chorus::agent::Worker> worker;
};

TEST_F(WorkerTest, SimulatedWorkWaitsOnHostTimersAndReportsProgress) {
  worker = chorus::agent::make_service_worker(host, options(1000ms));
  worker->start(task("t1"), rec.on_progress(), rec.on_done());
  EXPECT_TRUE(rec.progress.empty()) << "nothing is called from inside start";
  fake.run_pending();
  ASSERT_EQ(rec.progress.size(), 1u);
  EXPECT_EQ(rec.progress[0].first, 0);
  fake.advance(300ms);
  fake.run_pending();
  ASSERT_EQ(rec.progress.size(), 4u);
  EXPECT_EQ(rec.progress[1].first, 10);
  EXPECT_EQ(rec.progress[3].first, 30);
  EXPECT_EQ(rec.dones(), 0u);
  fake.advance(700ms);
  fake.run_pending();
  ASSERT_EQ(rec.dones(), 1u);
  EXPECT_TRUE(rec.done[0].ok);
  EXPECT_NE(rec.done[0].summary.find("simulated"), std::string::npos);
  EXPECT_EQ(rec.done[0].model, "");
  EXPECT_EQ(rec.done[0].decision_address, "");
  EXPECT_FALSE(rec.progress_after_done);
  EXPECT_EQ(fake.active_timers(), 0u);
  for (auto id : rec.threads) EXPECT_EQ(id, std::this_thread::get_id());
}

TEST_F(WorkerTest, NoSimulatedWorkIsDoneAtOnceButNotInsideStart) {
  worker = chorus::agent::make_service_worker(host, options(0ms));
  worker->start(task("t1"), rec.on_progress(), rec.on_done());
  EXPECT_EQ(rec.dones(), 0u);
  fake.run_pending();
  ASSERT_EQ(rec.dones(), 1u);
  EXPECT_TRUE(rec.done[0].ok);
}

TEST_F(WorkerTest, CancelEndsTheTaskOnceAndStopsItsTimers) {
  worker = chorus::agent::make_service_worker(host, options(1000ms));
  worker->start(task("t1"), rec.on_progress(), rec.on_done());
  worker->start(task("t2"), nullptr, nullptr);  // owners may leave callbacks out
  fake.run_pending();
  worker->cancel("t1");
  worker->cancel("unknown");
  EXPECT_EQ(rec.dones(), 0u);
  fake.run_pending();
  ASSERT_EQ(rec.dones(), 1u);
  EXPECT_FALSE(rec.done[0].ok);
  EXPECT_NE(rec.done[0].error.find("cancelled"), std::string::npos);
  worker->cancel("t1");
  fake.advance(5000ms);
  fake.run_pending();
  EXPECT_EQ(rec.dones(), 1u);
  EXPECT_FALSE(rec.progress_after_done);
  EXPECT_EQ(fake.active_timers(), 0u);
}

TEST_F(WorkerTest, ReasoningAnswerFromAProviderThreadIsDeliveredOnAHostThread) {
  provide_reasoning();
  worker = chorus::agent::make_service_worker(host, options());
  worker->start(task("t1"), rec.on_progress(), rec.on_done());
  ASSERT_EQ(reasoning.requests.size(), 1u);
  const json req = json::parse(reasoning.requests[0]);
  EXPECT_EQ(req["stream"], true);
  ASSERT_EQ(req["messages"].size(), 1u);
  EXPECT_EQ(req["messages"][0]["role"], "user");
  const std::string prompt = req["messages"][0]["content"];
  EXPECT_NE(prompt.find("Write the release notes"), std::string::npos);
  EXPECT_NE(prompt.find("Summarise the changes since 1.2."), std::string::npos);
  std::thread provider([&] {
    reasoning.chunk(1, "Result");
    reasoning.answer(1, {{"model", "phi3"}, {"content", "Result: three changes."}, {"finish_reason", "stop"}});
  });
  provider.join();
  EXPECT_EQ(rec.dones(), 0u);
  fake.run_pending();
  ASSERT_EQ(rec.dones(), 1u);
  EXPECT_TRUE(rec.done[0].ok);
  EXPECT_EQ(rec.done[0].model, "phi3");
  EXPECT_EQ(rec.done[0].summary, "Result: three changes.");
  for (auto id : rec.threads) EXPECT_EQ(id, std::this_thread::get_id());
  EXPECT_EQ(fake.held_refs(), 0u);
  EXPECT_EQ(fake.active_timers(), 0u);
}

TEST_F(WorkerTest, LongAnswersAreCutAtACharacterBoundary) {
  provide_reasoning();
  worker = chorus::agent::make_service_worker(host, options());
  worker->start(task("t1"), rec.on_progress(), rec.on_done());
  std::string answer = "x";
  for (int i = 0; i < 3000; ++i) answer += "\xC3\xA9";  // é
  reasoning.answer(1, {{"model", "m"}, {"content", answer}});
  fake.run_pending();
  ASSERT_EQ(rec.dones(), 1u);
  const std::string &s = rec.done[0].summary;
  EXPECT_LE(s.size(), 1024u);
  EXPECT_GE(s.size(), 1020u);
  EXPECT_EQ(s.size() % 2, 1u) << "no half character at the end";
}

TEST_F(WorkerTest, ReasoningErrorsAndRefusalsFailTheTask) {
  provide_reasoning();
  worker = chorus::agent::make_service_worker(host, options());
  worker->start(task("t1"), rec.on_progress(), rec.on_done());
  reasoning.fail(1, CHORUS_E_UNAVAILABLE, "no provider bound");
  fake.run_pending();
  ASSERT_EQ(rec.dones(), 1u);
  EXPECT_FALSE(rec.done[0].ok);
  EXPECT_NE(rec.done[0].error.find("no provider bound"), std::string::npos);

  reasoning.refuse = CHORUS_E_BUSY;
  Recorder rec2;
  worker->start(task("t2"), rec2.on_progress(), rec2.on_done());
  fake.run_pending();
  ASSERT_EQ(rec2.dones(), 1u);
  EXPECT_FALSE(rec2.done[0].ok);
  EXPECT_NE(rec2.done[0].error.find("queue full"), std::string::npos);
  EXPECT_EQ(fake.held_refs(), 0u);
}

TEST_F(WorkerTest, AModelThatDoesNotAnswerInTimeFailsTheTaskAndIsCancelled) {
  provide_reasoning();
  auto o = options();
  o.llm_timeout = 2000ms;
  worker = chorus::agent::make_service_worker(host, o);
  worker->start(task("t1"), rec.on_progress(), rec.on_done());
  fake.advance(1999ms);
  fake.run_pending();
  EXPECT_EQ(rec.dones(), 0u);
  EXPECT_GE(rec.progress.size(), 2u) << "progress while waiting for the model";
  fake.advance(1ms);
  fake.run_pending();
  ASSERT_EQ(rec.dones(), 1u);
  EXPECT_FALSE(rec.done[0].ok);
  EXPECT_NE(rec.done[0].error.find("did not answer within 2000 ms"), std::string::npos);
  EXPECT_TRUE(reasoning.wait_cancel(1, 0ms));
  EXPECT_EQ(fake.held_refs(), 1u) << "the ref is held until the provider's terminal callback";
  reasoning.fail(1, CHORUS_E_CANCELLED, "cancelled");
  fake.run_pending();
  EXPECT_EQ(rec.dones(), 1u);
  EXPECT_EQ(fake.held_refs(), 0u);
}

TEST_F(WorkerTest, CancelledReasoningIgnoresTheLateAnswer) {
  provide_reasoning();
  provide_ucxi();
  worker = chorus::agent::make_service_worker(host, options());
  worker->start(task("t1"), rec.on_progress(), rec.on_done());
  worker->cancel("t1");
  EXPECT_TRUE(reasoning.wait_cancel(1, 0ms));
  reasoning.answer(1, {{"model", "m"}, {"content", "late"}});
  fake.run_pending();
  ASSERT_EQ(rec.dones(), 1u);
  EXPECT_FALSE(rec.done[0].ok);
  EXPECT_TRUE(ucxi.decisions.empty());
}

TEST_F(WorkerTest, TheAnswerIsFiledAsADecisionThatPassesTheUcxiSchema) {
  provide_reasoning();
  provide_ucxi();
  worker = chorus::agent::make_service_worker(host, options());
  worker->start(task("proj.task:7", 2), rec.on_progress(), rec.on_done());
  reasoning.answer(1, {{"model", "phi3"}, {"content", "Result: done."}});
  fake.run_pending();
  ASSERT_EQ(ucxi.decisions.size(), 1u);
  EXPECT_EQ(rec.dones(), 0u) << "done waits for the decision";
  std::string field, why;
  auto d = chorus::ucxi::parse_decision_text(ucxi.decisions[0], &field, &why);
  ASSERT_TRUE(d) << field << ": " << why << "\n" << ucxi.decisions[0];
  EXPECT_EQ(d->id, "proj.task_7-a2");
  EXPECT_EQ(d->task, "proj_task_7");
  EXPECT_EQ(d->author_agent, "agent-1");
  EXPECT_EQ(d->author_role, "developer");
  EXPECT_EQ(d->project, "chorus");
  EXPECT_EQ(d->summary, "Result: done.");
  const std::string address = "ucxl://agent-1:developer@chorus:proj_task_7/*~1/decisions/proj.task_7-a2.json";
  std::thread provider([&] { ucxi.complete(0, CHORUS_OK, json{{"address", address}, {"version", 1}}.dump()); });
  provider.join();
  fake.run_pending();
  ASSERT_EQ(rec.dones(), 1u);
  EXPECT_TRUE(rec.done[0].ok);
  EXPECT_EQ(rec.done[0].decision_address, address);
  EXPECT_EQ(rec.done[0].model, "phi3");
}

TEST_F(WorkerTest, ADecisionThatCannotBeStoredKeepsTheAnswer) {
  provide_reasoning();
  provide_ucxi();
  worker = chorus::agent::make_service_worker(host, options());
  worker->start(task("t1"), rec.on_progress(), rec.on_done());
  reasoning.answer(1, {{"model", "m"}, {"content", "answer"}});
  ASSERT_EQ(ucxi.decisions.size(), 1u);
  ucxi.complete(0, CHORUS_E_UNAVAILABLE, "");
  fake.run_pending();
  ASSERT_EQ(rec.dones(), 1u);
  EXPECT_TRUE(rec.done[0].ok);
  EXPECT_EQ(rec.done[0].decision_address, "");
  EXPECT_TRUE(fake.has_log("was not stored", CHORUS_LOG_WARN));
}

TEST_F(WorkerTest, WithoutARoleNoDecisionIsFiled) {
  provide_reasoning();
  provide_ucxi();
  auto o = options();
  o.role = "";
  worker = chorus::agent::make_service_worker(host, o);
  worker->start(task("t1"), rec.on_progress(), rec.on_done());
  reasoning.answer(1, {{"model", "m"}, {"content", "answer"}});
  fake.run_pending();
  ASSERT_EQ(rec.dones(), 1u);
  EXPECT_TRUE(rec.done[0].ok);
  EXPECT_TRUE(ucxi.decisions.empty());
}

TEST_F(WorkerTest, WorkIsABackbeatOperationWhileItRuns) {
  provide_backbeat();
  worker = chorus::agent::make_service_worker(host, options(1000ms));
  worker->start(task("t1"), rec.on_progress(), rec.on_done());
  const std::string long_id = std::string(120, 'a') + ".b:c";
  worker->start(task(long_id), nullptr, nullptr);
  auto calls = backbeat.snapshot();
  ASSERT_EQ(calls.size(), 4u);
  EXPECT_EQ(calls[0], "start agent-1-t1 pubsub_sync 3");  // 1000 ms at 500 ms a beat, plus one
  EXPECT_EQ(calls[1], "phase agent-1-t1 3");
  const std::string op2 = calls[2].substr(6, calls[2].find(' ', 6) - 6);
  EXPECT_LE(op2.size(), size_t{CHORUS_BACKBEAT_OP_ID_MAX});
  EXPECT_EQ(op2.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:-"), std::string::npos);
  worker->cancel(long_id);
  fake.advance(1000ms);
  fake.run_pending();
  calls = backbeat.snapshot();
  ASSERT_EQ(calls.size(), 6u);
  EXPECT_EQ(calls[4], "fail " + op2 + " cancelled");
  EXPECT_EQ(calls[5], "complete agent-1-t1");
}

TEST_F(WorkerTest, ServicesAreAcquiredPerTask) {
  worker = chorus::agent::make_service_worker(host, options(0ms));
  EXPECT_EQ(json::parse(worker->services_json()), (json{{"reasoning", false}, {"ucxi", false}, {"backbeat", false}}));
  worker->start(task("t1"), rec.on_progress(), rec.on_done());
  fake.run_pending();
  EXPECT_TRUE(reasoning.requests.empty());
  provide_reasoning();
  provide_backbeat();
  EXPECT_EQ(json::parse(worker->services_json()), (json{{"reasoning", true}, {"ucxi", false}, {"backbeat", true}}));
  worker->start(task("t2"), rec.on_progress(), rec.on_done());
  EXPECT_EQ(reasoning.requests.size(), 1u);
  fake.withdraw(CHORUS_REASONING_SERVICE);
  reasoning.answer(1, {{"model", "m"}, {"content", "a"}});  // the ref held by the call keeps it valid
  fake.run_pending();
  EXPECT_EQ(rec.dones(), 2u);
  EXPECT_EQ(fake.held_refs(), 0u);
}

TEST_F(WorkerTest, AnswersRacingCancelsEndEveryTaskExactlyOnce) {
  provide_reasoning();
  worker = chorus::agent::make_service_worker(host, options());
  constexpr int kTasks = 200;
  std::vector<std::unique_ptr<Recorder>> recs;
  for (int i = 0; i < kTasks; ++i) {
    recs.push_back(std::make_unique<Recorder>());
    worker->start(task("t" + std::to_string(i)), recs.back()->on_progress(), recs.back()->on_done());
  }
  std::thread provider([&] {
    for (int i = 0; i < kTasks; ++i) {
      if (i % 3 == 0)
        reasoning.fail(i + 1, CHORUS_E_UNAVAILABLE, "down");
      else
        reasoning.answer(i + 1, {{"model", "m"}, {"content", "answer " + std::to_string(i)}});
    }
  });
  for (int i = 0; i < kTasks; i += 2) {
    worker->cancel("t" + std::to_string(i));
    if (i % 20 == 0) fake.run_pending();
  }
  provider.join();
  fake.run_pending();
  for (int i = 0; i < kTasks; ++i) {
    ASSERT_EQ(recs[i]->dones(), 1u) << "task " << i;
    EXPECT_FALSE(recs[i]->progress_after_done) << "task " << i;
    if (i % 2 == 1) {  // not cancelled: the provider's answer decides
      EXPECT_EQ(recs[i]->done[0].ok, i % 3 != 0) << "task " << i;
    }
  }
  EXPECT_EQ(fake.held_refs(), 0u);
  EXPECT_EQ(fake.active_timers(), 0u);
}

TEST_F(WorkerTest, ShutdownCancelsEverythingAndWaitsForTheProvider) {
  provide_backbeat();
  worker = chorus::agent::make_service_worker(host, options(10000ms));
  worker->start(task("sim"), rec.on_progress(), rec.on_done());
  provide_reasoning();
  worker->start(task("llm"), rec.on_progress(), rec.on_done());
  fake.run_pending();
  const size_t progress_before = rec.progress.size();
  std::thread provider([&] {
    if (reasoning.wait_cancel(1, 10s)) {
      std::this_thread::sleep_for(50ms);  // shutdown must wait for the terminal callback
      reasoning.fail(1, CHORUS_E_CANCELLED, "cancelled");
    }
  });
  worker->shutdown();
  EXPECT_EQ(fake.held_refs(), 0u) << "shutdown returned before the provider's terminal callback";
  provider.join();
  EXPECT_EQ(fake.active_timers(), 0u);
  worker->start(task("after"), rec.on_progress(), rec.on_done());
  fake.advance(20000ms);
  fake.run_pending();
  EXPECT_EQ(rec.dones(), 0u) << "no callback after shutdown";
  EXPECT_EQ(rec.progress.size(), progress_before);
  const auto calls = backbeat.snapshot();
  EXPECT_EQ(std::count_if(calls.begin(), calls.end(), [](const std::string &c) { return c.find("agent stopping") != std::string::npos; }), 2);
}

TEST_F(WorkerTest, ShutdownGivesUpOnAProviderThatNeverAnswers) {
  provide_reasoning();
  worker = chorus::agent::make_service_worker(host, options());
  worker->start(task("llm"), rec.on_progress(), rec.on_done());
  const auto t0 = std::chrono::steady_clock::now();
  worker->shutdown();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_TRUE(fake.has_log("still open", CHORUS_LOG_WARN));
  worker.reset();
  reasoning.answer(1, {{"model", "m"}, {"content", "very late"}});  // after the worker is gone: releases only
  EXPECT_EQ(fake.held_refs(), 0u);
  EXPECT_EQ(rec.dones(), 0u);
}

TEST_F(WorkerTest, ShutdownFromInsideACallbackDoesNotWaitForItself) {
  worker = chorus::agent::make_service_worker(host, options(0ms));
  bool called = false;
  worker->start(task("t1"), nullptr, [&](WorkResult) {
    worker->shutdown();
    called = true;
  });
  fake.run_pending();
  EXPECT_TRUE(called);
}

}  // namespace
