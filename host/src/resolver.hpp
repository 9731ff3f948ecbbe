// Turns the enabled plugins' provides/requires into a start order. Pure logic, no I/O, so it is
// exhaustively unit-tested and shared by `run`, `check` and SIGHUP reload.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <set>
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
  // Plugins that are enabled but could not be loaded (id -> reason). Their dependents are skipped
  // (with this reason quoted); they themselves are not repeated in ResolveResult::skipped.
  std::map<std::string, std::string> unavailable;
};

struct SkippedComponent {
  std::string id;
  std::string reason;  // one line, names the missing service / failed provider / cycle
};

struct ResolveResult {
  std::vector<std::string> order;  // start order: providers before consumers, ties by id
  // For each component in `order` (an empty map when it requires nothing): service -> provider id
  // it is wired to (absent for an unmet optional dep or one dropped to break a cycle).
  std::map<std::string, std::map<std::string, std::string>> wiring;
  // consumer -> the services in wiring[consumer] that it requires only optionally (dependents_of
  // does not follow these).
  std::map<std::string, std::set<std::string>> optional_deps;
  std::map<std::string, std::string> bindings;  // service -> chosen provider, for every service
                                                // somebody requires (and every bound one)
  std::vector<SkippedComponent> skipped;        // not startable: missing dep, in a cycle, ...; by
                                                // id. Not the `unavailable` plugins themselves.
  std::vector<std::string> errors;              // config errors (bad binding, ambiguous provider,
                                                // malformed range); each one line
  std::vector<std::string> warnings;            // e.g. an optional edge dropped to break a cycle
};

// Deterministic: the same input gives the same order, wiring and messages whatever the order of
// `components`. In short (resolver.cpp has the details):
//  - a requirement's candidates are the providers whose "major.minor.0" its range matches; a
//    binding picks the provider of a service, else the requirements on it must accept exactly one
//    provider between them (one provider per service) or it is an error naming them all;
//  - an unmet required dependency (late ones included) skips the consumer, transitively; an unmet
//    optional one just leaves it unwired;
//  - a cycle of required (non-late) edges skips its members; a cycle with an optional edge loses
//    such edges one by one, each with a warning;
//  - the order is Kahn's, smallest ready id first.
ResolveResult resolve(const ResolveInput &in);

// Components that must be skipped (transitively) when `failed` fails at start, given a result's
// wiring; used by the runtime when a plugin's create/start fails. Excludes optional edges.
std::vector<std::string> dependents_of(const ResolveResult &r, const std::string &failed);

}  // namespace chorus::host
