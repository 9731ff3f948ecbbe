// Doing a task: what happens between an agent winning a task and publishing task_complete.
//
// The coordinator (coordinator.hpp) decides who owns a task; a Worker does it. With chorus.reasoning
// bound, doing a task means asking the LLM; with chorus.ucxi bound, the answer is stored as a decision;
// with chorus.backbeat bound, the work is tracked as a BACKBEAT operation (status claims while it runs).
// Without reasoning the worker only waits `simulated_work_ms` (a demo or test cluster with no model).
// Every optional service is acquired per task, so a service that appears, is hot-swapped or vanishes
// while the agent runs is used, followed or dropped at the next task.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace chorus {
class Host;
}

namespace chorus::agent {

struct TaskSpec {
  std::string task_id;
  uint32_t attempt = 0;
  std::string title;
  std::string description;
  std::vector<std::string> required_capabilities;
  std::string project;  // the UCXL project a decision is filed under
};

struct WorkResult {
  bool ok = false;
  std::string summary;           // short text for task_complete (at most 1 KiB)
  std::string model;             // the model that answered ("" without reasoning)
  std::string decision_address;  // the UCXL address of the stored decision ("" without ucxi)
  std::string error;             // why it failed, when !ok
};

struct WorkerOptions {
  std::string agent_id;
  std::string role;
  std::string project = "chorus";
  std::chrono::milliseconds simulated_work{0};   // without reasoning
  std::chrono::milliseconds llm_timeout{300000};  // a reasoning call longer than this fails the task
  std::chrono::milliseconds ucxi_timeout{10000};
};

using ProgressFn = std::function<void(int percent, std::string note)>;
using DoneFn = std::function<void(WorkResult result)>;

class Worker {
 public:
  virtual ~Worker() = default;
  // Starts doing the task and returns at once. progress may be called any number of times, then done
  // exactly once, from any thread (never from inside start). After cancel(task_id) done is still
  // called once, with ok = false.
  virtual void start(const TaskSpec& task, ProgressFn progress, DoneFn done) = 0;
  virtual void cancel(const std::string& task_id) = 0;
  // Cancels everything and returns when no callback is running or will run again.
  virtual void shutdown() = 0;
  // Which optional services the next task would use: {"reasoning":bool,"ucxi":bool,"backbeat":bool}.
  virtual std::string services_json() const = 0;
};

// The worker over the host's services (reasoning, ucxi, backbeat; each optional). `host` outlives it.
std::unique_ptr<Worker> make_service_worker(const chorus::Host& host, WorkerOptions options);

}  // namespace chorus::agent
