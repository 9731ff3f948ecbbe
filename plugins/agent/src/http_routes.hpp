// /api/v1/agent (README.md, "HTTP"): the agent itself, the directory, the tasks, and the HMMM log.
// Every answer is JSON; errors are {"error":{"code","message"}}. Until start() the routes answer 503.
#pragma once

#include <memory>

#include <chorus/plugin.hpp>

#include "runtime.hpp"

namespace chorus::agent {

class RuntimeSource {
 public:
  virtual ~RuntimeSource() = default;
  virtual std::shared_ptr<Runtime> runtime() = 0;  // null while not running
};

// Mounts every route (constructor only).
void register_routes(chorus::Host &host, RuntimeSource &source);

}  // namespace chorus::agent
