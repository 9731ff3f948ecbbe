// Dependency resolution: from the enabled plugins' provides/requires to a wiring and a start order.
//
// The steps, each of which only ever removes components or edges, so later steps cannot undo the
// conclusions of earlier ones:
//   1. pick a provider for every requirement (bindings, else the single matching candidate);
//   2. skip components whose required provider is missing, and their consumers, transitively;
//   3. skip every cycle made of required edges only (Tarjan), and their consumers;
//   4. break the remaining cycles, which all contain an optional edge, by dropping optional edges
//      one at a time (with a warning each);
//   5. order what is left with Kahn's algorithm, taking the smallest ready id first.
// Everything is iterated in id order (std::map/std::set), so the same input always gives the same
// order, wiring and messages, which `chorus-agent check` and the tests depend on.
#include "resolver.hpp"

#include <algorithm>
#include <deque>
#include <functional>
#include <tuple>

#include "semver.hpp"

namespace chorus::host {
namespace {

// One requirement of one component, once its provider has been chosen.
struct Dep {
  std::string consumer;
  const RequiredService *req = nullptr;
  std::string provider;  // "" when no provider could be chosen
  bool dropped = false;  // an optional edge removed to break a cycle
};

const ProvidedService *find_provide(const Component &c, const std::string &service) {
  for (const ProvidedService &p : c.provides) {
    if (p.service == service) return &p;
  }
  return nullptr;
}

// Services are versioned major.minor; ranges are matched against major.minor.0.
Version service_version(const ProvidedService &p) { return Version{p.major, p.minor, 0, ""}; }
std::string short_version(const ProvidedService &p) { return std::to_string(p.major) + "." + std::to_string(p.minor); }

std::string join(const std::vector<std::string> &items, const char *sep) {
  std::string out;
  for (const std::string &item : items) out += (out.empty() ? "" : sep) + item;
  return out;
}

// "b optionally requires a.svc (^1) from a", one step of a cycle description.
std::string describe_edge(const Dep &d) {
  return d.consumer + (d.req->optional ? " optionally requires " : " requires ") + d.req->service + " (" +
         d.req->range + ") from " + d.provider;
}

// A cycle given as its edges in dependency order, printed from the lexicographically smallest
// consumer so that the text does not depend on where the search happened to start.
std::string describe_cycle(std::vector<Dep *> cycle) {
  auto first = std::min_element(cycle.begin(), cycle.end(),
                                [](const Dep *a, const Dep *b) { return a->consumer < b->consumer; });
  std::rotate(cycle.begin(), first, cycle.end());
  std::vector<std::string> steps;
  for (const Dep *d : cycle) steps.push_back(describe_edge(*d));
  return join(steps, " -> ");
}

// Consumer -> its ordering edges ("depends on"), for every active component.
using Graph = std::map<std::string, std::vector<Dep *>>;

class Resolver {
 public:
  explicit Resolver(const ResolveInput &in) : in_(in) {}

  ResolveResult run() {
    index_components();
    check_bindings();
    choose_providers();
    propagate_skips();
    skip_required_cycles();
    propagate_skips();
    break_optional_cycles();
    order_and_wire();
    // Plugins that failed to load are the caller's to report; they are in skip_ only so that
    // their consumers get skipped with the load error as the reason.
    for (const auto &[id, reason] : skip_) {
      if (components_.count(id)) r_.skipped.push_back({id, reason});
    }
    return std::move(r_);
  }

 private:
  struct Binding {
    std::string id;
    std::string problem;  // why the binding cannot be used ("" if it can)
  };

  bool active(const std::string &id) const { return components_.count(id) && !skip_.count(id); }

  void index_components() {
    for (const Component &c : in_.components) {
      if (!components_.emplace(c.id, &c).second) {
        r_.errors.push_back("plugin '" + c.id + "' is listed twice; using the first");
      }
    }
    // A plugin that failed to load: its consumers can only be found through a binding, since we do
    // not know what it would have provided.
    for (const auto &[id, reason] : in_.unavailable) {
      if (!components_.count(id)) skip_[id] = reason.empty() ? "no reason given" : reason;
    }
  }

  void check_bindings() {
    for (const auto &[service, id] : in_.bindings) {
      Binding &b = bindings_[service];
      b.id = id;
      auto it = components_.find(id);
      if (it != components_.end()) {
        if (find_provide(*it->second, service)) {
          r_.bindings[service] = id;
        } else {
          b.problem = "which does not provide it";
          r_.errors.push_back("binding " + service + ": '" + id + "' does not provide " + service);
        }
      } else if (in_.unavailable.count(id)) {
        r_.bindings[service] = id;  // valid configuration; its consumers are skipped in step 2
      } else {
        b.problem = "which is not an enabled plugin";
        r_.errors.push_back("binding " + service + ": '" + id + "' is not an enabled plugin");
      }
    }
  }

  // Every provider of `service` whose version `range` accepts, in id order.
  std::vector<std::string> candidates(const std::string &service, const VersionRange &range) const {
    std::vector<std::string> out;
    for (const auto &[id, c] : components_) {
      const ProvidedService *p = find_provide(*c, service);
      if (p && range.matches(service_version(*p))) out.push_back(id);
    }
    return out;
  }

  void choose_providers() {
    // Parse every range first: a malformed one is a config error and disqualifies its component.
    std::map<const RequiredService *, VersionRange> ranges;
    for (const auto &[id, c] : components_) {
      for (const RequiredService &req : c->requires_) {
        std::string error;
        if (auto range = VersionRange::parse(req.range, &error)) {
          ranges.emplace(&req, std::move(*range));
        } else {
          r_.errors.push_back("'" + id + "' requires " + req.service + ": " + error);
          skip_.emplace(id, "requires " + req.service + ": " + error);
        }
      }
    }

    // Without a binding, a service is ambiguous when the requirements on it, taken together,
    // accept more than one provider. The host binds one provider per service (docs/contract.md,
    // Services), so this is judged per service, not per consumer.
    std::map<std::string, std::set<std::string>> accepted;
    for (const auto &[req, range] : ranges) {
      if (bindings_.count(req->service)) continue;
      for (const std::string &id : candidates(req->service, range)) accepted[req->service].insert(id);
    }
    std::map<std::string, std::string> ambiguous;  // service -> message
    for (const auto &[service, ids] : accepted) {
      if (ids.size() == 1) {
        r_.bindings[service] = *ids.begin();
      } else {
        std::string msg = "service " + service + " is provided by " +
                          join(std::vector<std::string>(ids.begin(), ids.end()), ", ") +
                          ": add bindings: {" + service + ": <id>}";
        r_.errors.push_back(msg);
        ambiguous[service] = msg;
      }
    }

    for (const auto &[id, c] : components_) {
      for (const RequiredService &req : c->requires_) {
        auto range = ranges.find(&req);
        if (range == ranges.end()) continue;  // malformed; already skipped
        Dep dep{id, &req, "", false};
        std::string problem = pick(id, req, range->second, ambiguous, &dep.provider);
        // An unmet optional requirement is fine: the plugin starts without it.
        if (!problem.empty() && !req.optional) skip_.emplace(id, problem);
        deps_[id].push_back(std::move(dep));
      }
    }
  }

  // Chooses the provider for one requirement. Returns "" on success, else the reason, phrased as
  // the consumer's skip reason.
  std::string pick(const std::string &consumer, const RequiredService &req, const VersionRange &range,
                   const std::map<std::string, std::string> &ambiguous, std::string *provider) {
    std::string wants = "requires " + req.service + " (" + req.range + ")";
    if (auto b = bindings_.find(req.service); b != bindings_.end()) {
      const std::string &id = b->second.id;
      if (!b->second.problem.empty()) return wants + ", bound to '" + id + "', " + b->second.problem;
      auto it = components_.find(id);
      if (it != components_.end()) {
        const ProvidedService &p = *find_provide(*it->second, req.service);
        if (!range.matches(service_version(p))) {
          r_.errors.push_back("binding " + req.service + ": '" + id + "' provides " + req.service + " " +
                              short_version(p) + ", which does not match " + req.range + " required by '" +
                              consumer + "'");
          return wants + ", bound to '" + id + "', which provides " + short_version(p);
        }
      }
      *provider = id;  // possibly an unavailable plugin: propagate_skips() handles that
      return "";
    }
    std::vector<std::string> ids = candidates(req.service, range);
    if (!ids.empty()) {
      if (auto a = ambiguous.find(req.service); a != ambiguous.end()) return a->second;
      *provider = ids.front();  // the only one: more would have made the service ambiguous
      return "";
    }
    // No candidate. Name the providers whose versions did not fit; it is usually the answer.
    std::vector<std::string> others;
    for (const auto &[id, c] : components_) {
      if (const ProvidedService *p = find_provide(*c, req.service)) others.push_back(id + " has " + short_version(*p));
    }
    if (others.empty()) return wants + ", which no enabled plugin provides";
    return wants + ", which no enabled plugin provides in a matching version (" + join(others, ", ") + ")";
  }

  // Skips every component with a required dependency (late ones included: it will never be
  // satisfied) on a skipped provider, until nothing changes.
  void propagate_skips() {
    for (bool changed = true; changed;) {
      changed = false;
      for (const auto &[id, deps] : deps_) {
        if (skip_.count(id)) continue;
        for (const Dep &d : deps) {
          if (d.req->optional || d.provider.empty() || !skip_.count(d.provider)) continue;
          const char *why = components_.count(d.provider) ? "which was skipped: " : "which could not be loaded: ";
          skip_[id] = "requires " + d.req->service + " from '" + d.provider + "', " + why + skip_[d.provider];
          changed = true;
          break;
        }
      }
    }
  }

  // The ordering edges among active components, as consumer -> provider ("depends on") lists
  // sorted by (provider, service) so every graph walk is deterministic.
  Graph graph(bool required_only) {
    Graph g;
    for (const auto &[id, c] : components_) {
      if (!active(id)) continue;
      std::vector<Dep *> &out = g[id];
      auto deps = deps_.find(id);
      if (deps == deps_.end()) continue;
      for (Dep &d : deps->second) {
        if (d.req->late || d.dropped || d.provider.empty() || !active(d.provider)) continue;
        if (required_only && d.req->optional) continue;
        out.push_back(&d);
      }
      std::sort(out.begin(), out.end(), [](const Dep *a, const Dep *b) {
        return std::tie(a->provider, a->req->service) < std::tie(b->provider, b->req->service);
      });
    }
    return g;
  }

  // Tarjan's algorithm. Returns the strongly connected components that contain a cycle (more than
  // one member, or one with an edge to itself), each sorted, in order of their smallest member.
  static std::vector<std::vector<std::string>> cycles(const Graph &g) {
    std::map<std::string, int> index, low;
    std::set<std::string> on_stack;
    std::vector<std::string> stack;
    std::vector<std::vector<std::string>> out;
    int next = 0;
    std::function<void(const std::string &)> visit = [&](const std::string &v) {
      index[v] = low[v] = next++;
      stack.push_back(v);
      on_stack.insert(v);
      bool self_loop = false;
      for (const Dep *d : g.at(v)) {
        const std::string &w = d->provider;
        if (w == v) self_loop = true;
        if (!index.count(w)) {
          visit(w);
          low[v] = std::min(low[v], low[w]);
        } else if (on_stack.count(w)) {
          low[v] = std::min(low[v], index[w]);
        }
      }
      if (low[v] != index[v]) return;
      std::vector<std::string> scc;
      std::string w;
      do {
        w = stack.back();
        stack.pop_back();
        on_stack.erase(w);
        scc.push_back(w);
      } while (w != v);
      if (scc.size() > 1 || self_loop) {
        std::sort(scc.begin(), scc.end());
        out.push_back(std::move(scc));
      }
    };
    for (const auto &[v, edges] : g) {
      if (!index.count(v)) visit(v);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  // The fewest edges leading from `from` to `to` (at least one, so from == to finds a cycle),
  // breadth-first in the graph's sorted edge order.
  static std::vector<Dep *> shortest_path(const Graph &g, const std::string &from, const std::string &to) {
    std::map<std::string, Dep *> via;  // node -> edge it was first reached by
    std::deque<std::string> queue{from};
    while (!queue.empty()) {
      std::string u = queue.front();
      queue.pop_front();
      for (Dep *d : g.at(u)) {
        const std::string &v = d->provider;
        if (v == to) {
          std::vector<Dep *> path{d};
          for (std::string at = u; at != from; at = via.at(at)->consumer) path.push_back(via.at(at));
          std::reverse(path.begin(), path.end());
          return path;
        }
        if (v != from && via.emplace(v, d).second) queue.push_back(v);
      }
    }
    return {};
  }

  // A cycle of required edges can never start: every member waits for another. Each member's
  // reason is the shortest cycle through it (for a simple cycle, the same text for all).
  void skip_required_cycles() {
    auto g = graph(true);
    for (const std::vector<std::string> &scc : cycles(g)) {
      for (const std::string &id : scc) {
        skip_[id] = "dependency cycle: " + describe_cycle(shortest_path(g, id, id));
      }
    }
  }

  // What cycles remain all contain an optional edge, since the required-only ones are skipped.
  // Drop one optional edge per cycle (the smallest by consumer, then service), then look again:
  // dropping one at a time keeps every optional edge that is not needed to break a cycle.
  void break_optional_cycles() {
    for (;;) {
      auto g = graph(false);
      std::vector<std::vector<std::string>> sccs = cycles(g);
      if (sccs.empty()) return;
      for (const std::vector<std::string> &scc : sccs) {
        std::set<std::string> members(scc.begin(), scc.end());
        Dep *victim = nullptr;
        for (const std::string &id : scc) {
          for (Dep *d : g.at(id)) {
            if (!d->req->optional || !members.count(d->provider)) continue;
            if (!victim || std::tie(d->consumer, d->req->service) < std::tie(victim->consumer, victim->req->service)) {
              victim = d;
            }
          }
        }
        if (!victim) return;  // cannot happen after skip_required_cycles(); never loop forever
        std::vector<Dep *> cycle{victim};
        if (victim->provider != victim->consumer) {  // else a self-loop: the edge is the cycle
          for (Dep *d : shortest_path(g, victim->provider, victim->consumer)) cycle.push_back(d);
        }
        r_.warnings.push_back("dependency cycle: " + describe_cycle(cycle) + "; dropping " + victim->consumer +
                              "'s optional dependency on " + victim->req->service + ", so " + victim->consumer +
                              " starts without it");
        victim->dropped = true;
      }
    }
  }

  void order_and_wire() {
    auto g = graph(false);
    std::map<std::string, std::set<std::string>> consumers;  // provider -> consumers
    std::map<std::string, size_t> waiting;                   // consumer -> providers not started
    for (const auto &[id, edges] : g) {
      waiting[id];
      for (const Dep *d : edges) {
        if (consumers[d->provider].insert(id).second) ++waiting[id];
      }
    }
    std::set<std::string> ready;
    for (const auto &[id, n] : waiting) {
      if (n == 0) ready.insert(id);
    }
    while (!ready.empty()) {
      std::string id = *ready.begin();
      ready.erase(ready.begin());
      r_.order.push_back(id);
      for (const std::string &c : consumers[id]) {
        if (--waiting[c] == 0) ready.insert(c);
      }
    }

    for (const std::string &id : r_.order) {
      std::map<std::string, std::string> &wires = r_.wiring[id];
      auto deps = deps_.find(id);
      if (deps == deps_.end()) continue;
      std::set<std::string> required;
      for (const Dep &d : deps->second) {
        if (d.dropped || d.provider.empty() || !active(d.provider)) continue;
        wires.emplace(d.req->service, d.provider);
        (d.req->optional ? r_.optional_deps[id] : required).insert(d.req->service);
      }
      // A service required both ways counts as required.
      auto opt = r_.optional_deps.find(id);
      if (opt == r_.optional_deps.end()) continue;
      for (const std::string &s : required) opt->second.erase(s);
      if (opt->second.empty()) r_.optional_deps.erase(opt);
    }
  }

  const ResolveInput &in_;
  ResolveResult r_;
  std::map<std::string, const Component *> components_;  // by id
  std::map<std::string, Binding> bindings_;              // by service
  std::map<std::string, std::vector<Dep>> deps_;         // consumer -> requirements, declared order
  std::map<std::string, std::string> skip_;              // id -> reason
};

}  // namespace

ResolveResult resolve(const ResolveInput &in) { return Resolver(in).run(); }

std::vector<std::string> dependents_of(const ResolveResult &r, const std::string &failed) {
  std::map<std::string, std::vector<std::string>> consumers;  // provider -> required consumers
  for (const auto &[consumer, wires] : r.wiring) {
    auto opt = r.optional_deps.find(consumer);
    for (const auto &[service, provider] : wires) {
      if (opt != r.optional_deps.end() && opt->second.count(service)) continue;
      consumers[provider].push_back(consumer);
    }
  }
  std::set<std::string> found;
  std::deque<std::string> queue{failed};
  while (!queue.empty()) {
    std::string id = queue.front();
    queue.pop_front();
    for (const std::string &c : consumers[id]) {
      if (c != failed && found.insert(c).second) queue.push_back(c);
    }
  }
  std::vector<std::string> out;
  for (const std::string &id : r.order) {
    if (found.count(id)) out.push_back(id);
  }
  return out;
}

}  // namespace chorus::host
