// The chorus.pubsub v1 C table (pubsub_v1.h) over the running Node: argument checks, C callbacks
// wrapped as handlers, errors through chorus::set_error. Every slot is filled.
#pragma once

#include <memory>

#include <chorus/services/pubsub_v1.h>

#include "node.hpp"

namespace chorus::gossip {

// Where the table (and the HTTP routes) find the node: null while the plugin is not running.
class NodeSource {
 public:
  virtual ~NodeSource() = default;
  virtual std::shared_ptr<Node> node() = 0;
};

// The table; its `self` must be a NodeSource *.
chorus_pubsub_v1 make_pubsub_table();

}  // namespace chorus::gossip
