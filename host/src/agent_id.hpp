// The agent's id when the configuration does not name one (agent.id / CHORUS_AGENT_ID): generated
// once, kept in <state dir>/agent-id (mode 0600) and read back at every later start, so that agents
// sharing a config file still have ids of their own across restarts (docs/configuration.md, agent).
#pragma once

#include <string>

namespace chorus::host {

// The file that keeps a generated id.
std::string agent_id_path(const std::string &state_dir);

// Reads the kept id, or generates and keeps one ("agent-" + 16 random hex digits). *generated says
// which. Throws std::runtime_error naming the file when it cannot be read or written, or when what
// it holds is not a valid id (a file is never replaced silently).
std::string load_or_create_agent_id(const std::string &state_dir, bool *generated);

// What a kept id may be: 1-128 characters of [A-Za-z0-9._:-].
bool valid_kept_agent_id(const std::string &id);

}  // namespace chorus::host
