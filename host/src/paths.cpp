#include "paths.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

namespace fs = std::filesystem;

namespace chorus::host {

std::string executable_path() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : p.string();
}

std::string builtin_plugin_dir() {
  fs::path exe = executable_path();
  if (exe.empty()) return {};
  return (exe.parent_path() / CHORUS_PLUGIN_DIR_FROM_BIN).lexically_normal().string();
}

std::vector<std::string> plugin_search_dirs(const HostConfig &host) {
  std::vector<std::string> dirs;
  auto add = [&](const std::string &d) {
    if (d.empty()) return;
    std::string norm = fs::path(d).lexically_normal().string();
    if (norm.size() > 1 && norm.back() == '/') norm.pop_back();
    if (std::find(dirs.begin(), dirs.end(), norm) == dirs.end()) dirs.push_back(norm);
  };
  add(builtin_plugin_dir());
  for (const auto &d : host.plugin_dirs) add(d);
  return dirs;
}

std::string resolve_state_dir(const HostConfig &host, EnvLookup env) {
  if (!host.state_dir.empty()) return host.state_dir;
  if (auto v = env("CHORUS_STATE_DIR"); v && !v->empty()) return *v;
  if (auto v = env("STATE_DIRECTORY"); v && !v->empty()) return v->substr(0, v->find(':'));
  if (geteuid() == 0) return "/var/lib/chorus";
  if (auto v = env("XDG_STATE_HOME"); v && !v->empty()) return *v + "/chorus";
  if (auto v = env("HOME"); v && !v->empty()) return *v + "/.local/state/chorus";
  return "/tmp/chorus-state-" + std::to_string(geteuid());
}

std::optional<std::string> unsafe_plugin_location(const std::string &path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "cannot stat '" + path + "': " + std::strerror(errno);
  // The sticky bit does not help here: anyone could still add a file.
  if (st.st_mode & S_IWOTH) return "'" + path + "' is world-writable; refusing to load plugins from it";
  if (st.st_uid != 0 && st.st_uid != geteuid())
    return "'" + path + "' is owned by uid " + std::to_string(st.st_uid) +
           ", neither root nor this process; refusing to load plugins from it";
  return std::nullopt;
}

}  // namespace chorus::host
