// Loading plugin images and validating their descriptors. Every function here runs on the control
// thread only (dlopen-family calls are serialised, design F8). Nothing in a plugin is called besides
// the entry symbol until its descriptor has been validated and copied.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "chorus/plugin.h"
#include "resolver.hpp"

namespace chorus::host {

// The host's copy of a descriptor: nothing here points into the plugin image.
struct PluginInfo {
  std::string id, version, description, vendor, license, build_info;
  uint16_t abi_major = 0, abi_minor = 0, min_host_minor = 0;
  std::vector<ProvidedService> provides;
  std::vector<RequiredService> requires_;
  nlohmann::json config_schema;  // null when the plugin has none
};

// Identity of a file on disk, to notice a replaced plugin on SIGHUP.
struct FileFingerprint {
  uint64_t device = 0, inode = 0, size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const FileFingerprint &) const = default;
};
std::optional<FileFingerprint> fingerprint(const std::string &path);

// A loaded shared object. Images are never unloaded while the process runs: a retired instance's
// code may still be on some thread's stack or referenced by a callback (design F4), and the memory
// cost is bounded by the number of hot swaps.
struct PluginImage {
  std::string origin_path;  // the file the user installed
  std::string loaded_path;  // what was dlopen'ed: origin_path, or a private copy
  FileFingerprint origin_fingerprint;
  PluginInfo info;
  const chorus_plugin_vtable *vtable = nullptr;  // inside the image
  std::shared_ptr<void> library;                 // keeps the image mapped
};

struct LoadRequest {
  std::string path;         // the file to load
  std::string expected_id;  // "" = take the descriptor's id (listing); else must match
  std::string sha256;       // "" = no pin; else the file must hash to this (lower-case hex)
  bool private_copy = false;  // load from a unique copy (hot swap of a replaced file, pinned hash)
  std::string copy_dir;     // where private copies go; "" = never copy
};

// Loads and validates. On failure returns nullptr and sets *error to one line naming the file and
// the reason; a failed load has no side effects beyond the plugin's own static initialisers.
std::shared_ptr<PluginImage> load_plugin(const LoadRequest &req, std::string *error);

// Validates a descriptor as returned by an entry point; `origin` is used in messages. Exposed for
// unit tests and the fuzz target.
std::optional<std::string> validate_descriptor(const chorus_plugin_descriptor *d, const std::string &origin,
                                               PluginInfo *out);

// chorus-<id>.so in the first directory that has it, else "".
std::string find_plugin_file(const std::string &id, const std::vector<std::string> &dirs);
// Every chorus-*.so in the given directories (first directory wins for a repeated file name).
std::vector<std::string> list_plugin_files(const std::vector<std::string> &dirs);

// "0123abcd..." of a file (libsodium SHA-256), or "" when unreadable.
std::string sha256_file(const std::string &path);

bool valid_plugin_id(std::string_view id);
bool valid_service_name(std::string_view name);

}  // namespace chorus::host
