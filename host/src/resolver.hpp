// Turns the enabled plugins' provides/requires into a start order. Pure logic, no I/O, so it is
// exhaustively unit-tested and shared by `run`, `check` and SIGHUP reload.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace chorus::host {

struct ProvidedService {
  std::string service;
  uint16_t major = 0, minor = 0;
  bool swappable = false;
};

struct RequiredService {
  std::string service;
  std::string range;  // semver range text, validated by the resolver
  bool optional = false;
  bool late = false;  // no ordering edge
};

struct Component {
  std::string id;
  std::vector<ProvidedService> provides;
  std::vector<RequiredService> requires_;
};

struct ResolveInput {
  std::vector<Component> components;            // enabled plugins whose descriptors loaded
  std::map<std::string, std::string> bindings;  // service -> plugin id (YAML `bindings:`)
  // Plugins that are enabled but could not be loaded (id -> reason). Their dependents are skipped.
  std::map<std::string, std::string> unavailable;
};

struct SkippedComponent {
  std::string id;
  std::string reason;  // one line, names the missing service / failed provider / cycle
};

struct ResolveResult {
  std::vector<std::string> order;  // start order: providers before consumers, ties by id
  // For each component: service -> provider id it is wired to (absent for an unmet optional dep).
  std::map<std::string, std::map<std::string, std::string>> wiring;
  std::map<std::string, std::string> bindings;  // service -> chosen provider, for every service
                                                // somebody requires (and every bound one)
  std::vector<SkippedComponent> skipped;        // not startable: missing dep, in a cycle, ...
  std::vector<std::string> errors;              // config errors (bad binding, ambiguous provider,
                                                // malformed range); each one line
  std::vector<std::string> warnings;            // e.g. an optional edge dropped to break a cycle
};

ResolveResult resolve(const ResolveInput &in);

// Components that must be skipped (transitively) when `failed` fails at start, given a result's
// wiring; used by the runtime when a plugin's create/start fails. Excludes optional edges.
std::vector<std::string> dependents_of(const ResolveResult &r, const std::string &failed);

}  // namespace chorus::host
