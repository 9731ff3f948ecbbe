// Where things live on disk (docs/contract.md, Names and layout): the install's own plugin
// directory found relative to the running executable (so a relocated prefix still works), the state
// directory, directory safety.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"

namespace chorus::host {

std::string executable_path();        // /proc/self/exe, resolved
std::string builtin_plugin_dir();     // <exe dir>/<CHORUS_PLUGIN_DIR_FROM_BIN>, normalised
// builtin_plugin_dir(), then host.plugin_dirs, in that order, without duplicates.
std::vector<std::string> plugin_search_dirs(const HostConfig &host);

// host.state_dir, else $CHORUS_STATE_DIR, else $STATE_DIRECTORY (systemd; first of a ':' list),
// else /var/lib/chorus when root, else $XDG_STATE_HOME/chorus (default ~/.local/state/chorus).
std::string resolve_state_dir(const HostConfig &host, EnvLookup env = process_env);

// A directory or file plugins are loaded from must not be writable by others: refuses world-writable
// entries and entries owned by neither root nor us. Returns the reason, or nullopt when safe.
std::optional<std::string> unsafe_plugin_location(const std::string &path);

}  // namespace chorus::host
