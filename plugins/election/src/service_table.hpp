// The chorus.election v1 C table (chorus/services/election_v1.h) over the running Node: argument
// checks, answers from the node's current state, errors through chorus::set_error.
#pragma once

#include <memory>

#include <chorus/services/election_v1.h>

#include "node.hpp"

namespace chorus::election {

// Where the table and the HTTP routes find the node: null while the plugin is not running.
class NodeSource {
 public:
  virtual ~NodeSource() = default;
  virtual std::shared_ptr<Node> node() = 0;
};

// The table; its `self` must be a NodeSource *.
chorus_election_v1 make_election_table();

// get_admin_json's object: {"admin_id","is_self","term","since","since_unix_ms"}.
std::string admin_json(const AdminView &v);

}  // namespace chorus::election
