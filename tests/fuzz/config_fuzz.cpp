// libFuzzer target: chorus::host::parse_config (config.hpp).
//
// Input: YAML text, optionally followed by a NUL byte and NUL-separated values for the environment
// overrides, in this order: CHORUS_AGENT_ID, CHORUS_ROLE, CHORUS_CLUSTER_ID, CHORUS_LOG_LEVEL,
// CHORUS_LOG_FORMAT, CHORUS_HEALTH_PORT (a missing value = unset). Raw NUL is not valid YAML, so the
// separator never hides a YAML input.
//
// Contract: parse_config either returns a Config or throws ConfigError. Any other exception escaping
// (it reaches libFuzzer as an uncaught exception, i.e. abort), a crash or a sanitizer report is a bug.
// A returned Config must also satisfy the invariants the rest of the host relies on (checked below).
//
// CHORUS_FUZZ_SKIP_KNOWN=1 in the environment skips inputs shaped like the three bugs this target
// found, now fixed (tests/fuzz/README.md: yaml-cpp 0.7's LoadAll() looping forever, and alias cycles
// or alias "billion laughs" expansion in yaml_to_json()). It is off by default, so scripts/fuzz.sh
// keeps checking that the fixes hold.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include <map>
#include <set>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include "config.hpp"

namespace {

using chorus::host::Config;
using chorus::host::ConfigError;

constexpr std::array<const char *, 6> kEnvNames = {"CHORUS_AGENT_ID",   "CHORUS_ROLE",
                                                   "CHORUS_CLUSTER_ID", "CHORUS_LOG_LEVEL",
                                                   "CHORUS_LOG_FORMAT", "CHORUS_HEALTH_PORT"};

// EnvLookup is a plain function pointer, so the fuzzed environment lives in a global.
std::array<std::optional<std::string>, kEnvNames.size()> g_env;

std::optional<std::string> fuzz_env(const char *name) {
  for (size_t i = 0; i < kEnvNames.size(); ++i) {
    if (std::strcmp(name, kEnvNames[i]) == 0) return g_env[i];
  }
  // Variables parse_config must not read (CHORUS_STATE_DIR, CHORUS_CONFIG) get a value that would be
  // noticed if it were applied.
  return std::string("/fuzz/not-applied");
}

[[noreturn]] void invariant_failed(const char *what) {
  // Not an assert(): the fuzz build is RelWithDebInfo (NDEBUG).
  fprintf(stderr, "config_fuzz: invariant violated: %s\n", what);
  abort();
}

bool valid_id(std::string_view id) {
  auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (id.empty() || id.size() > 64 || !lower_or_digit(id[0])) return false;
  for (char c : id) {
    if (!lower_or_digit(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

void check_config(const Config &c) {
  static constexpr std::string_view kLevels[] = {"trace", "debug", "info", "warn", "error"};
  bool level_ok = false;
  for (std::string_view l : kLevels) level_ok |= c.host.log_level == l;
  if (!level_ok) invariant_failed("host.log_level outside trace|debug|info|warn|error");
  if (c.host.log_format != "text" && c.host.log_format != "json") invariant_failed("host.log_format outside text|json");
  if (c.host.worker_threads > 1024) invariant_failed("host.worker_threads > 1024");
  if (c.host.shutdown_timeout_ms > UINT32_MAX || c.host.start_timeout_ms > UINT32_MAX ||
      c.host.swap_drain_timeout_ms > UINT32_MAX)
    invariant_failed("a timeout above 2^32-1 ms");
  for (const std::string &dir : c.host.plugin_dirs) {
    if (dir.empty()) invariant_failed("empty entry in host.plugin_dirs");
  }
  if (c.source != "fuzz.yaml") invariant_failed("Config::source is not the given source");
  for (const auto &p : c.plugins) {
    if (!valid_id(p.id)) invariant_failed("plugin id accepted that is not [a-z0-9][a-z0-9._-]{0,63}");
    if (!p.sha256.empty()) {
      if (p.sha256.size() != 64) invariant_failed("sha256 pin not 64 characters");
      for (char ch : p.sha256) {
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) invariant_failed("sha256 pin not lower-case hex");
      }
    }
    // PluginSet::prepare_config (host/src/plugin_set.cpp) parses config_json back and treats "not an object" as an error of the user's file.
    auto j = nlohmann::json::parse(p.config_json, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) invariant_failed("plugin config_json is not a JSON object");
  }
  for (const auto &[service, id] : c.bindings) {
    if (service.empty()) invariant_failed("empty service name in bindings");
    if (!valid_id(id)) invariant_failed("binding to an invalid plugin id");
  }
  // The health port override replaces only the port.
  if (g_env[5] && !g_env[5]->empty()) {
    const std::string &listen = c.host.http_listen;
    const std::string suffix = ":" + *g_env[5];
    if (listen.size() < suffix.size() || listen.compare(listen.size() - suffix.size(), suffix.size(), suffix) != 0)
      invariant_failed("CHORUS_HEALTH_PORT accepted but http_listen does not end in it");
  }
}

// Walks the YAML event stream (no nodes built, so it cannot blow up itself) and measures what
// parse_config would suffer: the number of documents, whether an alias points into a collection that
// is still open (a cycle once yaml-cpp links the nodes) and how many nodes aliases expand to.
class KnownBugProbe : public YAML::EventHandler {
 public:
  static constexpr uint64_t kMaxExpanded = 100000;
  bool cycle = false;
  uint64_t expanded = 0;  // nodes after alias expansion, saturating at kMaxExpanded + 1

  void OnDocumentStart(const YAML::Mark &) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark &, YAML::anchor_t anchor) override { leaf(anchor); }
  void OnAlias(const YAML::Mark &, YAML::anchor_t anchor) override {
    if (open_.count(anchor)) cycle = true;
    auto it = sizes_.find(anchor);
    add(it == sizes_.end() ? 1 : it->second);
  }
  void OnScalar(const YAML::Mark &, const std::string &, YAML::anchor_t anchor, const std::string &) override {
    leaf(anchor);
  }
  void OnSequenceStart(const YAML::Mark &, const std::string &, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    start(anchor);
  }
  void OnSequenceEnd() override { end(); }
  void OnMapStart(const YAML::Mark &, const std::string &, YAML::anchor_t anchor, YAML::EmitterStyle::value) override {
    start(anchor);
  }
  void OnMapEnd() override { end(); }

 private:
  struct Open {
    YAML::anchor_t anchor;
    uint64_t size;
  };
  static uint64_t sat(uint64_t a, uint64_t b) { return std::min<uint64_t>(a + b, kMaxExpanded + 1); }
  void add(uint64_t n) {
    if (stack_.empty()) expanded = sat(expanded, n);
    else stack_.back().size = sat(stack_.back().size, n);
  }
  void leaf(YAML::anchor_t anchor) {
    if (anchor) sizes_[anchor] = 1;
    add(1);
  }
  void start(YAML::anchor_t anchor) {
    stack_.push_back({anchor, 1});
    if (anchor) open_.insert(anchor);
  }
  void end() {
    if (stack_.empty()) return;
    const Open o = stack_.back();
    stack_.pop_back();
    if (o.anchor) {
      open_.erase(o.anchor);
      sizes_[o.anchor] = o.size;
    }
    add(o.size);
  }
  std::vector<Open> stack_;
  std::set<YAML::anchor_t> open_;
  std::map<YAML::anchor_t, uint64_t> sizes_;
};

bool triggers_known_bug(const std::string &yaml) {
  std::istringstream in(yaml);
  KnownBugProbe probe;
  try {
    YAML::Parser parser(in);
    // A document needs at least a few bytes ("---"), so more documents than bytes is the LoadAll loop.
    for (size_t documents = 0; parser.HandleNextDocument(probe);) {
      if (++documents > yaml.size() + 2) return true;
    }
  } catch (const YAML::Exception &) {
    return false;  // parse_config reports the same error as a ConfigError
  }
  return probe.cycle || probe.expanded > KnownBugProbe::kMaxExpanded;
}

bool g_skip_known = false;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  const char *skip = std::getenv("CHORUS_FUZZ_SKIP_KNOWN");
  g_skip_known = skip != nullptr && std::strcmp(skip, "1") == 0;
  if (g_skip_known) fprintf(stderr, "config_fuzz: CHORUS_FUZZ_SKIP_KNOWN=1, skipping inputs that hit known bugs\n");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view input(reinterpret_cast<const char *>(data), size);
  const size_t nul = input.find('\0');
  const std::string yaml(input.substr(0, nul));

  for (auto &v : g_env) v.reset();
  if (nul != std::string_view::npos) {
    std::string_view rest = input.substr(nul + 1);
    for (size_t i = 0; i < g_env.size(); ++i) {
      const size_t end = rest.find('\0');
      g_env[i] = std::string(rest.substr(0, end));
      if (end == std::string_view::npos) break;
      rest.remove_prefix(end + 1);
    }
  }

  if (g_skip_known && triggers_known_bug(yaml)) return 0;

  try {
    Config c = chorus::host::parse_config(yaml, "fuzz.yaml", fuzz_env);
    check_config(c);
    // Parsing is deterministic: the same text gives the same Config.
    if (!(chorus::host::parse_config(yaml, "fuzz.yaml", fuzz_env) == c)) invariant_failed("parse_config is not deterministic");
  } catch (const ConfigError &e) {
    if (std::strlen(e.what()) == 0) invariant_failed("empty ConfigError message");
  }
  return 0;
}
