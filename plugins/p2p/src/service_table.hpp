// chorus.p2p.host v1 (chorus/services/p2p_host_v1.h): the C table the plugin provides.
#pragma once

#include <memory>

#include <chorus/services/p2p_host_v1.h>

#include "node.hpp"

namespace chorus::p2p {

// The table's entries are noexcept trampolines into Node (implemented beside them, in
// service_table.cpp). Their `self` is the plugin's std::unique_ptr<Node>: empty while the node is
// not running, and the entries then answer CHORUS_E_UNAVAILABLE.
chorus_p2p_host_v1 p2p_host_table();

}  // namespace chorus::p2p
