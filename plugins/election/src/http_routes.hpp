// The election's HTTP routes:
//   GET  /api/v1/election          the state of this node's election (README.md, "HTTP")
//   POST /api/v1/election/trigger  a manual election: 202 {"term"}, or 409 {"error"} inside the
//                                  stability window or without a quorum
// 503 {"error"} while the plugin is not running.
#pragma once

#include <chorus/plugin.hpp>

#include "service_table.hpp"

namespace chorus::election {

// Mounts both routes (constructor or start() only).
void register_routes(chorus::Host &host, NodeSource &source);

}  // namespace chorus::election
