// The service worker: a task done through chorus.reasoning (or a simulated wait), its answer filed as
// a decision through chorus.ucxi, and the work tracked as a BACKBEAT operation. See work.hpp.
//
// Threads. Events come from host timers, the reasoning provider's threads and ucxi's completions.
// None of them calls the owner's callbacks directly: every progress and done is posted to a host
// worker thread and run under the job's own callback lock, so the owner sees its callbacks one at a
// time per task, never inside start() or cancel(), never progress after done, and never on a
// provider's thread (which must not be blocked). A job's result is decided once (`finished`); a
// cancel or deadline decides it at once and the provider's late answer is dropped.
//
// Shutdown. After shutdown() starts no callback is delivered (the owner is going away): timers are
// cancelled (the host waits for one that is running), open reasoning calls are cancelled, and it
// waits for the callbacks being delivered and for the provider calls still holding a service ref
// to end, so no ref is held and no sink is used once it returns. A provider that never answers is
// waited for kShutdownWait at most; its late completion then touches only the shared state (kept
// alive by the completion itself) and releases its ref, which the ABI allows after stop.
#include "work.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <map>
#include <mutex>

#include <chorus/plugin.hpp>
#include <chorus/services/backbeat_v1.h>
#include <chorus/services/reasoning_v1.h>
#include <chorus/services/ucxi_v1.h>
#include <nlohmann/json.hpp>

namespace chorus::agent {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using Reasoning = chorus::ServiceRef<chorus_reasoning_v1>;
using Ucxi = chorus::ServiceRef<chorus_ucxi_v1>;
using Backbeat = chorus::ServiceRef<chorus_backbeat_v1>;

constexpr size_t kSummaryMaxBytes = 1024;
constexpr size_t kDecisionSummaryMaxBytes = 8192;  // plugins/ucxi/src/decision.hpp
constexpr size_t kDecisionTitleMaxBytes = 256;
constexpr size_t kComponentMaxBytes = 128;
constexpr uint64_t kStreamProgressEveryMs = 500;  // at most one progress per this while the answer streams
constexpr std::chrono::milliseconds kReasoningTick = 1000ms;
constexpr std::chrono::milliseconds kShutdownWait = 2000ms;

// The longest prefix of s of at most max bytes that does not cut a UTF-8 sequence.
std::string utf8_prefix(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return std::string(s.substr(0, n));
}

// s as a UCXL component ([A-Za-z0-9_-]{1,128}, never "any"); other bytes become '_'.
std::string component(std::string_view s, std::string_view fallback) {
  std::string out;
  for (char c : s.substr(0, kComponentMaxBytes)) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    out += ok ? c : '_';
  }
  if (out.empty()) out = fallback;
  if (out == "any") out = "any_";
  return out;
}

std::string rfc3339_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

struct Shared;
struct Call;

struct Job {
  uint64_t seq = 0;
  TaskSpec task;
  ProgressFn progress;
  DoneFn done;
  uint64_t started_ms = 0;
  bool reasoning = false;
  std::mutex cb_mu;             // serialises this job's callbacks
  bool done_delivered = false;  // under cb_mu
  // Under Shared::mu:
  bool finished = false;  // the result is decided (done is queued)
  std::vector<uint64_t> timers;
  std::weak_ptr<Call> call;  // the open reasoning call
  std::string op_id;         // the BACKBEAT operation ("" = none)
};

struct Shared {
  Shared(const chorus::Host &h, WorkerOptions o) : host(h), opt(std::move(o)) {}
  const chorus::Host &host;
  const WorkerOptions opt;
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  uint64_t next_seq = 0;
  std::map<uint64_t, std::shared_ptr<Job>> jobs;  // not finished yet
  size_t open_ops = 0;                            // reasoning calls and ucxi publications alive
  size_t delivering = 0;                          // owner callbacks running
};

thread_local const Shared *t_delivering = nullptr;  // lets shutdown() run from inside a callback

// One reasoning request. The sink's user is a heap shared_ptr<Call> freed at the terminal callback;
// the ref is released when the last holder (that callback, or a concurrent cancel) lets go.
struct Call {
  std::shared_ptr<Shared> s;
  std::shared_ptr<Job> job;
  Reasoning ref;
  chorus_ai_sink sink{};
  std::atomic<uint64_t> call_id{0};
  size_t bytes = 0;  // sink callbacks are never concurrent for one request
  uint64_t last_progress_ms = 0;
  ~Call() {
    ref.reset();
    std::lock_guard lk(s->mu);
    --s->open_ops;
    s->cv.notify_all();
  }
};

struct Publish {
  std::shared_ptr<Shared> s;
  std::shared_ptr<Job> job;
  Ucxi ref;
  WorkResult result;
  ~Publish() {
    ref.reset();
    std::lock_guard lk(s->mu);
    --s->open_ops;
    s->cv.notify_all();
  }
};

// Runs one owner callback on a host worker thread; dropped once shutdown started.
void deliver(const std::shared_ptr<Shared> &s, const std::shared_ptr<Job> &job, std::function<void()> fn, bool is_done) {
  {
    std::lock_guard lk(s->mu);
    if (s->stopping) return;  // the host may be going away: do not touch it
  }
  try {
    s->host.post([s, job, fn = std::move(fn), is_done] {
      {
        std::lock_guard lk(s->mu);
        if (s->stopping) return;
        ++s->delivering;
      }
      t_delivering = s.get();
      {
        std::lock_guard cb(job->cb_mu);
        if (!job->done_delivered) {
          if (is_done) job->done_delivered = true;
          try {
            fn();
          } catch (const std::exception &e) {
            s->host.error(std::string("agent: a task callback threw: ") + e.what());
          } catch (...) {
            s->host.error("agent: a task callback threw");
          }
        }
      }
      t_delivering = nullptr;
      std::lock_guard lk(s->mu);
      --s->delivering;
      s->cv.notify_all();
    });
  } catch (const std::exception &) {
    // The host refuses tasks only while the plugin stops: nobody waits for this callback any more.
  }
}

void progress(const std::shared_ptr<Shared> &s, const std::shared_ptr<Job> &job, int percent, std::string note) {
  deliver(s, job, [job, percent, note = std::move(note)] { if (job->progress) job->progress(percent, note); }, false);
}

void backbeat_start(const std::shared_ptr<Shared> &s, const std::shared_ptr<Job> &job, std::chrono::milliseconds expected) {
  Backbeat bb = s->host.try_acquire<chorus_backbeat_v1>(CHORUS_BACKBEAT_SERVICE, "^1");
  if (!bb) return;
  // Operation ids are StatusClaim task ids ([A-Za-z0-9_:-]{1,128}); the sequence keeps a retried
  // attempt of the same task from colliding with an operation BACKBEAT still holds.
  std::string id = "agent-" + std::to_string(job->seq) + "-" + component(job->task.task_id, "task");
  id.resize(std::min<size_t>(id.size(), CHORUS_BACKBEAT_OP_ID_MAX));
  chorus_backbeat_status st{};
  st.struct_size = sizeof st;
  double beat_ms = 0;
  if (bb.call<&chorus_backbeat_v1::get_status>(&st) == CHORUS_OK && st.current_tempo_bpm > 0)
    beat_ms = 60000.0 / st.current_tempo_bpm;
  uint32_t beats = 1;
  if (beat_ms > 0) beats = static_cast<uint32_t>(std::clamp<double>(double(expected.count()) / beat_ms + 1, 1, CHORUS_BACKBEAT_MAX_BEATS));
  const std::string data = json{{"agent_task", job->task.task_id}, {"attempt", job->task.attempt},
                                {"title", utf8_prefix(job->task.title, 128)}}
                               .dump(-1, ' ', false, json::error_handler_t::replace);
  // BACKBEAT knows only CHORUS's four P2P operation types; a task is coordinated and reported over
  // pubsub, so it is tracked as pubsub_sync, its data naming the task.
  const std::string type = CHORUS_BACKBEAT_OP_PUBSUB_SYNC;
  chorus::ErrorBuffer err;
  const chorus_status rc = bb.call<&chorus_backbeat_v1::start_operation>(id.data(), id.size(), type.data(), type.size(),
                                                                         beats, data.data(), data.size(), err.get());
  if (rc != CHORUS_OK) {
    s->host.debug("agent: BACKBEAT operation for task " + job->task.task_id + " not started: " + std::string(err.text()));
    return;
  }
  bb.call<&chorus_backbeat_v1::update_phase>(id.data(), id.size(), int32_t{CHORUS_BACKBEAT_PHASE_EXECUTING}, uint32_t{0},
                                             nullptr);
  std::lock_guard lk(s->mu);
  job->op_id = id;
}

void backbeat_end(const std::shared_ptr<Shared> &s, const std::string &op_id, bool ok, std::string_view reason) {
  if (op_id.empty()) return;
  Backbeat bb = s->host.try_acquire<chorus_backbeat_v1>(CHORUS_BACKBEAT_SERVICE, "^1");
  if (!bb) return;
  if (ok)
    bb.call<&chorus_backbeat_v1::complete_operation>(op_id.data(), op_id.size(), uint32_t{0}, nullptr);
  else
    bb.call<&chorus_backbeat_v1::fail_operation>(op_id.data(), op_id.size(), reason.data(), reason.size(), nullptr);
}

// Decides the job's result (once) and queues done. Any thread, no lock held.
void finish(const std::shared_ptr<Shared> &s, const std::shared_ptr<Job> &job, WorkResult result) {
  std::vector<uint64_t> timers;
  std::string op_id;
  {
    std::lock_guard lk(s->mu);
    if (job->finished) return;
    job->finished = true;
    s->jobs.erase(job->seq);
    if (s->stopping) return;  // shutdown cancels the timers and the operation itself
    timers.swap(job->timers);
    op_id.swap(job->op_id);
  }
  for (uint64_t t : timers) s->host.cancel_timer(t);  // from inside that timer: returns at once
  backbeat_end(s, op_id, result.ok, result.error);
  deliver(s, job, [job, r = std::move(result)]() mutable { if (job->done) job->done(std::move(r)); }, true);
}

WorkResult failure(std::string why) {
  WorkResult r;
  r.error = std::move(why);
  r.summary = utf8_prefix(r.error, kSummaryMaxBytes);
  return r;
}

// Starts a host timer for the job; false when the host refused it (stopping).
template <class F>
bool job_timer(const std::shared_ptr<Shared> &s, const std::shared_ptr<Job> &job, std::chrono::milliseconds first,
               std::chrono::milliseconds period, F fn) {
  std::lock_guard lk(s->mu);
  if (s->stopping || job->finished) return false;
  try {
    job->timers.push_back(s->host.timer(first, period, std::move(fn)));
  } catch (const std::exception &) {
    return false;
  }
  return true;
}

void start_simulated(const std::shared_ptr<Shared> &s, const std::shared_ptr<Job> &job) {
  const auto total = s->opt.simulated_work;
  WorkResult done;
  done.ok = true;
  done.summary = "simulated work of " + std::to_string(total.count()) + " ms done (no chorus.reasoning bound)";
  if (total.count() <= 0) {
    finish(s, job, std::move(done));
    return;
  }
  const auto tick = std::clamp<std::chrono::milliseconds>(total / 10, 50ms, 5000ms);
  if (tick < total) {
    job_timer(s, job, tick, tick, [s, job, total] {
      const uint64_t elapsed = s->host.now_ms() - job->started_ms;
      const int pct = static_cast<int>(std::min<uint64_t>(99, elapsed * 100 / static_cast<uint64_t>(total.count())));
      progress(s, job, pct, "working (simulated)");
    });
  }
  if (!job_timer(s, job, total, 0ms, [s, job, done] { finish(s, job, done); }))
    finish(s, job, failure("the host refused a timer (stopping)"));
}

void publish_decision(const std::shared_ptr<Shared> &s, const std::shared_ptr<Job> &job, WorkResult result,
                      const std::string &answer) {
  Ucxi ucxi = s->host.try_acquire<chorus_ucxi_v1>(CHORUS_UCXI_SERVICE, "^1");
  if (!ucxi || s->opt.role.empty()) {  // a decision is encrypted to its author's role: none, no decision
    finish(s, job, std::move(result));
    return;
  }
  const TaskSpec &t = job->task;
  std::string id;
  for (char c : t.task_id + "-a" + std::to_string(t.attempt)) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    id += ok ? c : '_';
  }
  id.resize(std::min<size_t>(id.size(), 128));
  json decision = {{"id", id},
                   {"title", utf8_prefix(t.title.empty() ? t.task_id : t.title, kDecisionTitleMaxBytes)},
                   {"summary", utf8_prefix(answer, kDecisionSummaryMaxBytes)},
                   {"outcome", "approval"},
                   {"author", {{"agent", component(s->opt.agent_id, "agent")}, {"role", component(s->opt.role, "agent")}}},
                   {"project", component(t.project.empty() ? s->opt.project : t.project, "chorus")},
                   {"task", component(t.task_id, "task")},
                   {"citations", json::array()},
                   {"created", rfc3339_now()},
                   {"metadata", {{"task_id", t.task_id}, {"attempt", t.attempt}, {"model", result.model}}}};
  const std::string text = decision.dump(-1, ' ', false, json::error_handler_t::replace);
  auto *p = new Publish{s, job, std::move(ucxi), std::move(result)};
  {
    std::lock_guard lk(s->mu);
    ++s->open_ops;
  }
  chorus::ErrorBuffer err;
  const auto on_done = [](void *arg, chorus_status st, const chorus_error *e, const char *meta, size_t meta_len,
                          const uint8_t *, size_t) {
    std::unique_ptr<Publish> pub(static_cast<Publish *>(arg));
    if (st == CHORUS_OK && meta != nullptr) {
      const json m = json::parse(std::string_view(meta, meta_len), nullptr, false);
      if (m.is_object() && m.contains("address") && m["address"].is_string())
        pub->result.decision_address = m["address"].get<std::string>();
    } else {
      bool stopping;
      {
        std::lock_guard lk(pub->s->mu);
        stopping = pub->s->stopping;
      }
      if (!stopping)
        pub->s->host.warn("agent: the decision of task " + pub->job->task.task_id + " was not stored: " +
                          chorus::status_name(st) + (e != nullptr ? std::string(" ") + e->message : std::string()));
    }
    finish(pub->s, pub->job, std::move(pub->result));
  };
  const uint32_t timeout = static_cast<uint32_t>(std::clamp<int64_t>(s->opt.ucxi_timeout.count(), 1, UINT32_MAX));
  progress(s, job, 90, "storing the decision");
  const chorus_status rc = p->ref.call<&chorus_ucxi_v1::publish_decision>(text.c_str(), timeout, +on_done, p, err.get());
  if (rc != CHORUS_OK) {
    std::unique_ptr<Publish> pub(p);
    s->host.warn("agent: the decision of task " + t.task_id + " was refused: " + std::string(err.text()));
    finish(s, job, std::move(pub->result));
  }
}

void on_answer(const std::shared_ptr<Call> &c, std::string_view done_json) {
  const json d = json::parse(done_json, nullptr, false);
  WorkResult r;
  r.ok = true;
  std::string answer;
  if (d.is_object()) {
    if (d.contains("model") && d["model"].is_string()) r.model = d["model"].get<std::string>();
    if (d.contains("content") && d["content"].is_string()) answer = d["content"].get<std::string>();
  }
  r.summary = answer.empty() ? "(the model gave an empty answer)" : utf8_prefix(answer, kSummaryMaxBytes);
  {
    std::lock_guard lk(c->s->mu);
    if (c->job->finished || c->s->stopping) return;  // cancelled or timed out meanwhile
  }
  publish_decision(c->s, c->job, std::move(r), answer);
}

std::shared_ptr<Call> take(void *user) {
  auto *holder = static_cast<std::shared_ptr<Call> *>(user);
  std::shared_ptr<Call> c = std::move(*holder);
  delete holder;
  return c;
}

void sink_chunk(void *user, const char *, size_t len) {
  Call &c = **static_cast<std::shared_ptr<Call> *>(user);
  c.bytes += len;
  {
    std::lock_guard lk(c.s->mu);
    if (c.s->stopping || c.job->finished) return;
  }
  const uint64_t now = c.s->host.now_ms();
  if (now - c.last_progress_ms < kStreamProgressEveryMs) return;
  c.last_progress_ms = now;
  progress(c.s, c.job, 50, "the model is answering (" + std::to_string(c.bytes) + " bytes)");
}
void sink_done(void *user, const char *json_text, size_t len) {
  std::shared_ptr<Call> c = take(user);
  on_answer(c, std::string_view(json_text != nullptr ? json_text : "", len));
}
void sink_error(void *user, chorus_status st, const char *msg, size_t len) {
  std::shared_ptr<Call> c = take(user);
  finish(c->s, c->job,
         failure(std::string("reasoning failed: ") + chorus::status_name(st) +
                 (len > 0 && msg != nullptr ? ": " + std::string(msg, len) : std::string())));
}

void cancel_call(const std::shared_ptr<Job> &job, const std::shared_ptr<Shared> &s) {
  std::shared_ptr<Call> c;
  {
    std::lock_guard lk(s->mu);
    c = job->call.lock();
  }
  if (c) c->ref.call<&chorus_reasoning_v1::cancel>(c->call_id.load());
}

std::string chat_request(const TaskSpec &t) {
  std::string prompt = "You are working on task " + t.task_id + " (attempt " + std::to_string(t.attempt) +
                       ") of project " + t.project + ".\nTitle: " + t.title + "\n";
  if (!t.description.empty()) prompt += "\n" + t.description + "\n";
  if (!t.required_capabilities.empty()) {
    prompt += "\nRequired capabilities:";
    for (const auto &cap : t.required_capabilities) prompt += " " + cap;
    prompt += "\n";
  }
  prompt += "\nDo the task and answer with its result, beginning with a one-paragraph summary.";
  return json{{"messages", json::array({{{"role", "user"}, {"content", prompt}}})}, {"stream", true}}.dump(
      -1, ' ', false, json::error_handler_t::replace);
}

void start_reasoning(const std::shared_ptr<Shared> &s, const std::shared_ptr<Job> &job, Reasoning ref) {
  auto c = std::make_shared<Call>();
  c->s = s;
  c->job = job;
  c->ref = std::move(ref);
  c->sink.struct_size = sizeof c->sink;
  c->sink.on_chunk = &sink_chunk;
  c->sink.on_done = &sink_done;
  c->sink.on_error = &sink_error;
  auto *holder = new std::shared_ptr<Call>(c);
  c->sink.user = holder;
  {
    std::lock_guard lk(s->mu);
    ++s->open_ops;
    job->call = c;
  }
  const auto timeout = s->opt.llm_timeout;
  job_timer(s, job, timeout, 0ms, [s, job, timeout] {
    finish(s, job, failure("the model did not answer within " + std::to_string(timeout.count()) + " ms"));
    cancel_call(job, s);
  });
  job_timer(s, job, kReasoningTick, kReasoningTick, [s, job] { progress(s, job, 10, "waiting for the model"); });
  const std::string body = chat_request(job->task);
  chorus::ErrorBuffer err;
  uint64_t id = 0;
  const chorus_status rc =
      c->ref.call<&chorus_reasoning_v1::complete>(body.data(), body.size(), &c->sink, &id, err.get());
  if (rc != CHORUS_OK) {
    delete holder;  // no sink callback ever comes
    finish(s, job, failure(std::string("reasoning refused the request: ") + chorus::status_name(rc) + " " +
                           std::string(err.text())));
    return;
  }
  c->call_id.store(id);
  bool cancelled;
  {
    std::lock_guard lk(s->mu);
    cancelled = job->finished;
  }
  if (cancelled) c->ref.call<&chorus_reasoning_v1::cancel>(id);  // cancel() raced with complete()
}

class ServiceWorker final : public Worker {
 public:
  ServiceWorker(const chorus::Host &host, WorkerOptions options)
      : s_(std::make_shared<Shared>(host, std::move(options))) {}
  ~ServiceWorker() override { shutdown(); }

  void start(const TaskSpec &task, ProgressFn on_progress, DoneFn on_done) override {
    auto job = std::make_shared<Job>();
    job->task = task;
    if (job->task.project.empty()) job->task.project = s_->opt.project;
    job->progress = std::move(on_progress);
    job->done = std::move(on_done);
    job->started_ms = s_->host.now_ms();
    {
      std::lock_guard lk(s_->mu);
      if (s_->stopping) return;
      job->seq = ++s_->next_seq;
      s_->jobs.emplace(job->seq, job);
    }
    Reasoning reasoning = s_->host.try_acquire<chorus_reasoning_v1>(CHORUS_REASONING_SERVICE, "^1");
    job->reasoning = static_cast<bool>(reasoning);
    backbeat_start(s_, job, reasoning ? s_->opt.llm_timeout : s_->opt.simulated_work);
    progress(s_, job, 0, reasoning ? "started: asking the model" : "started: simulated work");
    if (reasoning)
      start_reasoning(s_, job, std::move(reasoning));
    else
      start_simulated(s_, job);
  }

  void cancel(const std::string &task_id) override {
    std::vector<std::shared_ptr<Job>> hit;
    {
      std::lock_guard lk(s_->mu);
      for (const auto &[seq, job] : s_->jobs)
        if (job->task.task_id == task_id) hit.push_back(job);
    }
    for (const auto &job : hit) {
      finish(s_, job, failure("cancelled"));
      cancel_call(job, s_);
    }
  }

  void shutdown() override {
    std::vector<std::shared_ptr<Job>> jobs;
    {
      std::lock_guard lk(s_->mu);
      if (s_->stopping) return;
      s_->stopping = true;
      for (auto &[seq, job] : s_->jobs) jobs.push_back(job);
    }
    for (const auto &job : jobs) {
      std::vector<uint64_t> timers;
      std::string op_id;
      {
        std::lock_guard lk(s_->mu);
        timers.swap(job->timers);
        op_id.swap(job->op_id);
      }
      for (uint64_t t : timers) s_->host.cancel_timer(t);
      cancel_call(job, s_);
      backbeat_end(s_, op_id, false, "agent stopping");
    }
    std::unique_lock lk(s_->mu);
    const size_t own = t_delivering == s_.get() ? 1 : 0;
    if (!s_->cv.wait_for(lk, kShutdownWait, [&] { return s_->delivering <= own && s_->open_ops == 0; }))
      s_->host.warn("agent: stopping with " + std::to_string(s_->open_ops) + " service calls still open");
    s_->jobs.clear();
  }

  std::string services_json() const override {
    const auto has = [&](const char *name) {
      if (std::string_view(name) == CHORUS_REASONING_SERVICE)
        return static_cast<bool>(s_->host.try_acquire<chorus_reasoning_v1>(name, "^1"));
      if (std::string_view(name) == CHORUS_UCXI_SERVICE)
        return static_cast<bool>(s_->host.try_acquire<chorus_ucxi_v1>(name, "^1"));
      return static_cast<bool>(s_->host.try_acquire<chorus_backbeat_v1>(name, "^1"));
    };
    return json{{"reasoning", has(CHORUS_REASONING_SERVICE)},
                {"ucxi", has(CHORUS_UCXI_SERVICE)},
                {"backbeat", has(CHORUS_BACKBEAT_SERVICE)}}
        .dump();
  }

 private:
  std::shared_ptr<Shared> s_;
};

}  // namespace

std::unique_ptr<Worker> make_service_worker(const chorus::Host &host, WorkerOptions options) {
  return std::make_unique<ServiceWorker>(host, std::move(options));
}

}  // namespace chorus::agent
