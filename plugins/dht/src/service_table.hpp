// The chorus.dht v1 C table (dht_v1.h) over the running Node: argument checks, the C completion
// wrapped as a Done, errors through chorus::set_error. Every slot is filled.
#pragma once

#include <memory>

#include <chorus/services/dht_v1.h>

#include "node.hpp"

namespace chorus::dht {

// Where the table (and the HTTP routes) find the node: null while the plugin is not running.
class NodeSource {
 public:
  virtual ~NodeSource() = default;
  virtual std::shared_ptr<Node> node() = 0;
};

// The table; its `self` must be a NodeSource *.
chorus_dht_v1 make_dht_table();

}  // namespace chorus::dht
