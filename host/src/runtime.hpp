// The lifecycle driver: loads the enabled plugins, resolves them, starts them in dependency order,
// serves the host routes, reacts to signals (SIGTERM/SIGINT stop, SIGHUP reload and hot swap), and
// stops everything in the exact reverse of the order it started.
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config.hpp"
#include "plugin_loader.hpp"
#include "resolver.hpp"

namespace chorus::host {

// What `chorus-agent check` prints (docs/contract.md, Command line).
struct CheckReport {
  std::vector<std::string> order;
  std::map<std::string, std::string> bindings;
  std::vector<SkippedComponent> skipped;
  std::vector<std::string> errors;
  std::vector<std::string> warnings;
  nlohmann::json to_json() const;
};

// What `chorus-agent plugins` prints: every chorus-*.so found, loaded or not.
struct ListedPlugin {
  std::string path;
  std::optional<PluginInfo> info;
  std::string error;  // why it could not be loaded
};
std::vector<ListedPlugin> list_plugins(const Config &config, std::vector<std::string> *errors);

// Exit codes (docs/contract.md, Command line).
constexpr int kExitOk = 0;
constexpr int kExitPluginFailed = 1;
constexpr int kExitUsage = 2;

class Runtime {
 public:
  // config_path: the file SIGHUP re-reads ("" = built-in default, reload re-applies env only).
  Runtime(Config config, std::string config_path);
  ~Runtime();
  Runtime(const Runtime &) = delete;
  Runtime &operator=(const Runtime &) = delete;

  CheckReport check();  // loads and resolves; starts nothing
  int run();            // blocks until SIGTERM/SIGINT; returns the exit code
  bool abandoned_plugins() const;  // some plugin call never returned (its thread was left behind)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace chorus::host
