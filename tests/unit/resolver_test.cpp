// Dependency resolution (host/src/resolver.hpp): provider choice, skips, cycles and start order.
// Skip reasons, errors and warnings are shown to users by `chorus-agent check`, so they are
// compared as exact text.
#include "resolver.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace chorus::host {
namespace {

using Strings = std::vector<std::string>;
using Wiring = std::map<std::string, std::map<std::string, std::string>>;
using Skips = std::vector<std::pair<std::string, std::string>>;

ProvidedService provides(std::string service, uint16_t major = 1, uint16_t minor = 0) {
  return ProvidedService{std::move(service), major, minor, false};
}
RequiredService needs(std::string service, std::string range = "^1") {
  return RequiredService{std::move(service), std::move(range), false, false};
}
RequiredService wants(std::string service, std::string range = "^1") {  // optional
  return RequiredService{std::move(service), std::move(range), true, false};
}
RequiredService later(std::string service, std::string range = "^1", bool optional = false) {  // late
  return RequiredService{std::move(service), std::move(range), optional, true};
}
Component comp(std::string id, std::vector<ProvidedService> p = {}, std::vector<RequiredService> r = {}) {
  return Component{std::move(id), std::move(p), std::move(r)};
}

Skips skips(const ResolveResult &r) {
  Skips out;
  for (const SkippedComponent &s : r.skipped) out.emplace_back(s.id, s.reason);
  return out;
}

ResolveResult resolve_components(std::vector<Component> components, std::map<std::string, std::string> bindings = {}) {
  ResolveInput in;
  in.components = std::move(components);
  in.bindings = std::move(bindings);
  return resolve(in);
}

// Everything fine: nothing skipped, no errors, no warnings.
void expect_clean(const ResolveResult &r) {
  EXPECT_EQ(skips(r), Skips{});
  EXPECT_EQ(r.errors, Strings{});
  EXPECT_EQ(r.warnings, Strings{});
}

// ---- ordering -----------------------------------------------------------------------------------

TEST(ResolverOrder, EmptyInput) {
  ResolveResult r = resolve(ResolveInput{});
  expect_clean(r);
  EXPECT_EQ(r.order, Strings{});
  EXPECT_EQ(r.wiring, Wiring{});
  EXPECT_TRUE(r.bindings.empty());
}

TEST(ResolverOrder, LinearChainStartsProvidersFirst) {
  // Listed consumer-first, and with ids whose alphabetical order is the reverse of the chain.
  ResolveResult r = resolve_components({comp("a", {}, {needs("b.svc")}),
                                        comp("b", {provides("b.svc")}, {needs("c.svc")}),
                                        comp("c", {provides("c.svc", 1, 4)})});
  expect_clean(r);
  EXPECT_EQ(r.order, (Strings{"c", "b", "a"}));
  EXPECT_EQ(r.wiring, (Wiring{{"a", {{"b.svc", "b"}}}, {"b", {{"c.svc", "c"}}}, {"c", {}}}));
  EXPECT_EQ(r.bindings, (std::map<std::string, std::string>{{"b.svc", "b"}, {"c.svc", "c"}}));
  EXPECT_TRUE(r.optional_deps.empty());
}

TEST(ResolverOrder, DiamondBreaksTiesById) {
  ResolveResult r = resolve_components({comp("top", {}, {needs("left"), needs("right")}),
                                        comp("z-left", {provides("left")}, {needs("base")}),
                                        comp("a-right", {provides("right")}, {needs("base")}),
                                        comp("base", {provides("base")})});
  expect_clean(r);
  EXPECT_EQ(r.order, (Strings{"base", "a-right", "z-left", "top"}));
  EXPECT_EQ(r.wiring.at("top"), (std::map<std::string, std::string>{{"left", "z-left"}, {"right", "a-right"}}));
}

TEST(ResolverOrder, SameResultForEveryInputOrder) {
  // Kahn's ready set is taken smallest-id first: "b" must wait for "d", so "c" (ready from the
  // start) goes before it even though "b" < "c".
  std::vector<Component> components = {comp("a"), comp("b", {}, {needs("d.svc")}), comp("c"),
                                       comp("d", {provides("d.svc")}, {later("x", "*", true)})};
  std::sort(components.begin(), components.end(), [](const Component &x, const Component &y) { return x.id < y.id; });
  int permutations = 0;
  do {
    ResolveResult r = resolve_components(components);
    expect_clean(r);
    EXPECT_EQ(r.order, (Strings{"a", "c", "d", "b"}));
    ++permutations;
  } while (std::next_permutation(components.begin(), components.end(),
                                 [](const Component &x, const Component &y) { return x.id < y.id; }));
  EXPECT_EQ(permutations, 24);
}

TEST(ResolverOrder, ContractServiceGraph) {
  // The planned in-tree service graph (docs/contract.md, Services), backbeat disabled: its optional consumers start without it.
  ResolveResult r = resolve_components({
      comp("ucxi", {}, {needs("chorus.p2p.host"), needs("chorus.dht")}),
      comp("reasoning", {provides("chorus.reasoning")}, {needs("chorus.ai.provider")}),
      comp("p2p", {provides("chorus.p2p.host")}, {wants("chorus.backbeat")}),
      comp("mdns", {provides("chorus.discovery")}, {needs("chorus.p2p.host"), wants("chorus.backbeat")}),
      comp("gossip", {provides("chorus.pubsub")}, {needs("chorus.p2p.host"), wants("chorus.backbeat")}),
      comp("election", {provides("chorus.election")}, {needs("chorus.pubsub"), wants("chorus.backbeat")}),
      comp("dht", {provides("chorus.dht")}, {needs("chorus.p2p.host"), wants("chorus.backbeat")}),
      comp("ai-ollama", {provides("chorus.ai.provider")}),
  });
  expect_clean(r);
  EXPECT_EQ(r.order, (Strings{"ai-ollama", "p2p", "dht", "gossip", "election", "mdns", "reasoning", "ucxi"}));
  EXPECT_EQ(r.wiring.at("p2p"), (std::map<std::string, std::string>{}));
  EXPECT_EQ(r.wiring.at("ucxi"), (std::map<std::string, std::string>{{"chorus.dht", "dht"}, {"chorus.p2p.host", "p2p"}}));
  EXPECT_EQ(r.bindings, (std::map<std::string, std::string>{{"chorus.ai.provider", "ai-ollama"},
                                                            {"chorus.dht", "dht"},
                                                            {"chorus.p2p.host", "p2p"},
                                                            {"chorus.pubsub", "gossip"}}));
  EXPECT_EQ(dependents_of(r, "p2p"), (Strings{"dht", "gossip", "election", "mdns", "ucxi"}));
  EXPECT_EQ(dependents_of(r, "ai-ollama"), (Strings{"reasoning"}));
}

// ---- missing providers --------------------------------------------------------------------------

TEST(ResolverMissing, RequiredProviderMissingSkipsTheConsumer) {
  ResolveResult r = resolve_components({comp("a", {}, {needs("chorus.x")}), comp("b")});
  EXPECT_EQ(skips(r), (Skips{{"a", "requires chorus.x (^1), which no enabled plugin provides"}}));
  EXPECT_EQ(r.errors, Strings{});  // a missing plugin is not a config error
  EXPECT_EQ(r.order, (Strings{"b"}));
  EXPECT_EQ(r.wiring, (Wiring{{"b", {}}}));
  EXPECT_FALSE(r.bindings.count("chorus.x"));
}

TEST(ResolverMissing, ProviderWithWrongVersionIsNamed) {
  ResolveResult r = resolve_components({comp("a", {}, {needs("chorus.x", "^1.2")}),
                                        comp("p", {provides("chorus.x", 1, 1)}), comp("q", {provides("chorus.x", 2, 0)})});
  EXPECT_EQ(skips(r), (Skips{{"a", "requires chorus.x (^1.2), which no enabled plugin provides in a matching "
                                   "version (p has 1.1, q has 2.0)"}}));
  EXPECT_EQ(r.errors, Strings{});
  EXPECT_EQ(r.order, (Strings{"p", "q"}));
}

TEST(ResolverMissing, OptionalProviderMissingIsFine) {
  ResolveResult r = resolve_components({comp("a", {}, {wants("chorus.backbeat"), later("chorus.y", "*", true)})});
  expect_clean(r);
  EXPECT_EQ(r.order, (Strings{"a"}));
  EXPECT_EQ(r.wiring, (Wiring{{"a", {}}}));
  EXPECT_TRUE(r.optional_deps.empty());
}

TEST(ResolverMissing, OptionalProviderPresentIsWiredAndOrdered) {
  ResolveResult r = resolve_components({comp("a", {}, {wants("chorus.backbeat")}), comp("z", {provides("chorus.backbeat")})});
  expect_clean(r);
  EXPECT_EQ(r.order, (Strings{"z", "a"}));  // the optional edge orders z first
  EXPECT_EQ(r.wiring.at("a"), (std::map<std::string, std::string>{{"chorus.backbeat", "z"}}));
  EXPECT_EQ(r.optional_deps, (std::map<std::string, std::set<std::string>>{{"a", {"chorus.backbeat"}}}));
}

TEST(ResolverMissing, UnavailablePluginsDoNotChangeOtherMessages) {
  ResolveInput in;
  in.components = {comp("a", {}, {needs("chorus.x")})};
  in.unavailable = {{"maybe-x", "chorus-maybe-x.so: undefined symbol: chorus_plugin_entry"}};
  ResolveResult r = resolve(in);
  // The caller reports maybe-x's load failure itself; it is not repeated among the skipped.
  EXPECT_EQ(skips(r), (Skips{{"a", "requires chorus.x (^1), which no enabled plugin provides"}}));
  EXPECT_EQ(r.errors, Strings{});
  EXPECT_EQ(r.order, Strings{});
}

TEST(ResolverMissing, SkipsPropagateTransitivelyWithTheRootCause) {
  ResolveResult r = resolve_components({
      comp("p2p", {provides("chorus.p2p.host")}, {needs("chorus.missing")}),
      comp("mdns", {provides("chorus.discovery")}, {needs("chorus.p2p.host")}),
      comp("x", {}, {needs("chorus.discovery")}),
      comp("obs", {}, {wants("chorus.p2p.host")}),  // optional: starts without it
      comp("other"),
  });
  const std::string root = "requires chorus.missing (^1), which no enabled plugin provides";
  const std::string mdns = "requires chorus.p2p.host from 'p2p', which was skipped: " + root;
  EXPECT_EQ(skips(r), (Skips{{"mdns", mdns},
                             {"p2p", root},
                             {"x", "requires chorus.discovery from 'mdns', which was skipped: " + mdns}}));
  EXPECT_EQ(r.order, (Strings{"obs", "other"}));
  EXPECT_EQ(r.wiring, (Wiring{{"obs", {}}, {"other", {}}}));
  EXPECT_EQ(r.errors, Strings{});
}

// ---- bindings -----------------------------------------------------------------------------------

TEST(ResolverBinding, SelectsAmongSeveralProviders) {
  ResolveResult r = resolve_components({comp("ai-ollama", {provides("chorus.ai.provider")}),
                                        comp("ai-openai", {provides("chorus.ai.provider")}),
                                        comp("reasoning", {}, {needs("chorus.ai.provider")})},
                                       {{"chorus.ai.provider", "ai-openai"}});
  expect_clean(r);
  EXPECT_EQ(r.wiring.at("reasoning"), (std::map<std::string, std::string>{{"chorus.ai.provider", "ai-openai"}}));
  EXPECT_EQ(r.bindings, (std::map<std::string, std::string>{{"chorus.ai.provider", "ai-openai"}}));
  EXPECT_EQ(r.order, (Strings{"ai-ollama", "ai-openai", "reasoning"}));
}

TEST(ResolverBinding, SeveralCandidatesWithoutBindingIsAnError) {
  ResolveResult r = resolve_components({comp("ai-openai", {provides("chorus.ai.provider")}),
                                        comp("ai-ollama", {provides("chorus.ai.provider", 1, 3)}),
                                        comp("reasoning", {}, {needs("chorus.ai.provider")}),
                                        comp("helper", {}, {wants("chorus.ai.provider")})});
  const std::string msg =
      "service chorus.ai.provider is provided by ai-ollama, ai-openai: add bindings: {chorus.ai.provider: <id>}";
  EXPECT_EQ(r.errors, (Strings{msg}));
  EXPECT_EQ(skips(r), (Skips{{"reasoning", msg}}));
  EXPECT_EQ(r.order, (Strings{"ai-ollama", "ai-openai", "helper"}));  // never picked arbitrarily:
  EXPECT_EQ(r.wiring.at("helper"), (std::map<std::string, std::string>{}));  // not even for an optional dep
  EXPECT_FALSE(r.bindings.count("chorus.ai.provider"));
}

TEST(ResolverBinding, ProvidersOutsideEveryRangeAreNotCandidates) {
  ResolveResult r = resolve_components({comp("old", {provides("chorus.x", 1, 0)}), comp("new", {provides("chorus.x", 2, 1)}),
                                        comp("c", {}, {needs("chorus.x", "^2")})});
  expect_clean(r);
  EXPECT_EQ(r.wiring.at("c"), (std::map<std::string, std::string>{{"chorus.x", "new"}}));
  EXPECT_EQ(r.bindings, (std::map<std::string, std::string>{{"chorus.x", "new"}}));
}

TEST(ResolverBinding, OneProviderPerServiceAcrossConsumers) {
  // Each consumer alone has one candidate, but together they need two providers of one service,
  // and the host binds one provider per service.
  ResolveResult r = resolve_components({comp("old", {provides("chorus.x", 1, 0)}), comp("new", {provides("chorus.x", 2, 1)}),
                                        comp("c1", {}, {needs("chorus.x", "^1")}), comp("c2", {}, {needs("chorus.x", "^2")})});
  const std::string msg = "service chorus.x is provided by new, old: add bindings: {chorus.x: <id>}";
  EXPECT_EQ(r.errors, (Strings{msg}));
  EXPECT_EQ(skips(r), (Skips{{"c1", msg}, {"c2", msg}}));
}

TEST(ResolverBinding, UnknownIdIsAnErrorAndNeverFallsBack) {
  ResolveResult r = resolve_components({comp("p", {provides("chorus.x")}), comp("c", {}, {needs("chorus.x")})},
                                       {{"chorus.x", "nope"}});
  EXPECT_EQ(r.errors, (Strings{"binding chorus.x: 'nope' is not an enabled plugin"}));
  EXPECT_EQ(skips(r), (Skips{{"c", "requires chorus.x (^1), bound to 'nope', which is not an enabled plugin"}}));
  EXPECT_EQ(r.order, (Strings{"p"}));
  EXPECT_FALSE(r.bindings.count("chorus.x"));
}

TEST(ResolverBinding, BoundPluginMustProvideTheService) {
  ResolveResult r = resolve_components({comp("p", {provides("chorus.x")}), comp("q", {provides("chorus.y")}),
                                        comp("c", {}, {needs("chorus.x")})},
                                       {{"chorus.x", "q"}});
  EXPECT_EQ(r.errors, (Strings{"binding chorus.x: 'q' does not provide chorus.x"}));
  EXPECT_EQ(skips(r), (Skips{{"c", "requires chorus.x (^1), bound to 'q', which does not provide it"}}));
  EXPECT_EQ(r.order, (Strings{"p", "q"}));
}

TEST(ResolverBinding, BoundProviderMustMatchEachConsumersRange) {
  ResolveResult r = resolve_components({comp("p", {provides("chorus.x", 2, 0)}), comp("c", {}, {needs("chorus.x")}),
                                        comp("d", {}, {needs("chorus.x", ">=1.5")})},
                                       {{"chorus.x", "p"}});
  EXPECT_EQ(r.errors, (Strings{"binding chorus.x: 'p' provides chorus.x 2.0, which does not match ^1 required by 'c'"}));
  EXPECT_EQ(skips(r), (Skips{{"c", "requires chorus.x (^1), bound to 'p', which provides 2.0"}}));
  EXPECT_EQ(r.order, (Strings{"p", "d"}));
  EXPECT_EQ(r.wiring.at("d"), (std::map<std::string, std::string>{{"chorus.x", "p"}}));
  EXPECT_EQ(r.bindings, (std::map<std::string, std::string>{{"chorus.x", "p"}}));
}

TEST(ResolverBinding, BindingsForServicesNobodyRequires) {
  ResolveResult r = resolve_components({comp("p", {provides("chorus.x")})}, {{"chorus.x", "p"}, {"chorus.y", "p"}});
  EXPECT_EQ(r.errors, (Strings{"binding chorus.y: 'p' does not provide chorus.y"}));
  EXPECT_EQ(skips(r), Skips{});
  EXPECT_EQ(r.bindings, (std::map<std::string, std::string>{{"chorus.x", "p"}}));
  EXPECT_EQ(r.order, (Strings{"p"}));
}

TEST(ResolverBinding, BindingToAPluginThatFailedToLoad) {
  ResolveInput in;
  in.components = {comp("ai-ollama", {provides("chorus.ai.provider")}), comp("reasoning", {}, {needs("chorus.ai.provider")}),
                   comp("helper", {}, {wants("chorus.ai.provider")})};
  in.bindings = {{"chorus.ai.provider", "ai-openai"}};
  in.unavailable = {{"ai-openai", "chorus-ai-openai.so: wrong ELF class"}};
  ResolveResult r = resolve(in);
  EXPECT_EQ(r.errors, Strings{});  // the configuration is right; the plugin is broken
  EXPECT_EQ(skips(r), (Skips{{"reasoning", "requires chorus.ai.provider from 'ai-openai', which could not be loaded: "
                                           "chorus-ai-openai.so: wrong ELF class"}}));
  EXPECT_EQ(r.order, (Strings{"ai-ollama", "helper"}));
  EXPECT_EQ(r.wiring.at("helper"), (std::map<std::string, std::string>{}));
  EXPECT_EQ(r.bindings, (std::map<std::string, std::string>{{"chorus.ai.provider", "ai-openai"}}));
}

TEST(ResolverBinding, LoadFailureWithoutAReason) {
  ResolveInput in;
  in.components = {comp("c", {}, {needs("s")})};
  in.bindings = {{"s", "x"}};
  in.unavailable = {{"x", ""}};
  ResolveResult r = resolve(in);
  EXPECT_EQ(skips(r), (Skips{{"c", "requires s from 'x', which could not be loaded: no reason given"}}));
}

// ---- malformed ranges ---------------------------------------------------------------------------

TEST(ResolverRange, MalformedRangeIsAnErrorAndSkipsItsComponent) {
  ResolveResult r = resolve_components({comp("p", {provides("chorus.x")}),
                                        comp("c", {provides("chorus.c")}, {needs("chorus.x", ">=1 <")}),
                                        comp("d", {}, {needs("chorus.c")}),
                                        comp("e", {}, {wants("chorus.x", "^1.02")})});
  const std::string c_reason = "requires chorus.x: bad range '>=1 <': expected a version after '<'";
  EXPECT_EQ(r.errors, (Strings{"'c' requires chorus.x: bad range '>=1 <': expected a version after '<'",
                               "'e' requires chorus.x: bad range '^1.02': '1.02' is not a version (leading zero in '02')"}));
  EXPECT_EQ(skips(r), (Skips{{"c", c_reason},
                             {"d", "requires chorus.c from 'c', which was skipped: " + c_reason},
                             {"e", "requires chorus.x: bad range '^1.02': '1.02' is not a version (leading zero in '02')"}}));
  EXPECT_EQ(r.order, (Strings{"p"}));
}

// ---- cycles -------------------------------------------------------------------------------------

TEST(ResolverCycle, ThreeCycleSkipsEveryMemberWithTheWholeCycle) {
  ResolveResult r = resolve_components({
      comp("c", {provides("c.svc")}, {needs("a.svc")}),
      comp("b", {provides("b.svc")}, {needs("c.svc", "*")}),
      comp("a", {provides("a.svc")}, {needs("b.svc")}),
      comp("d", {}, {needs("a.svc")}),  // depends on the cycle
      comp("e"),                        // unrelated
  });
  const std::string cycle =
      "dependency cycle: a requires b.svc (^1) from b -> b requires c.svc (*) from c -> c requires a.svc (^1) from a";
  EXPECT_EQ(skips(r), (Skips{{"a", cycle},
                             {"b", cycle},
                             {"c", cycle},
                             {"d", "requires a.svc from 'a', which was skipped: " + cycle}}));
  EXPECT_EQ(r.errors, Strings{});
  EXPECT_EQ(r.warnings, Strings{});
  EXPECT_EQ(r.order, (Strings{"e"}));
}

TEST(ResolverCycle, CycleTextStartsAtTheSmallestIdWhateverTheEntryPoint) {
  ResolveResult r = resolve_components({comp("mid", {provides("m")}, {needs("z")}), comp("zed", {provides("z")}, {needs("a")}),
                                        comp("alpha", {provides("a")}, {needs("m", "~1.0")})});
  const std::string cycle =
      "dependency cycle: alpha requires m (~1.0) from mid -> mid requires z (^1) from zed -> zed requires a (^1) from alpha";
  EXPECT_EQ(skips(r), (Skips{{"alpha", cycle}, {"mid", cycle}, {"zed", cycle}}));
}

TEST(ResolverCycle, SelfCycle) {
  ResolveResult r = resolve_components({comp("a", {provides("a.svc")}, {needs("a.svc")}), comp("b", {}, {needs("a.svc")})});
  const std::string cycle = "dependency cycle: a requires a.svc (^1) from a";
  EXPECT_EQ(skips(r), (Skips{{"a", cycle}, {"b", "requires a.svc from 'a', which was skipped: " + cycle}}));
  EXPECT_EQ(r.order, Strings{});
}

TEST(ResolverCycle, OptionalSelfDependencyIsDroppedWithAWarning) {
  ResolveResult r = resolve_components({comp("a", {provides("a.svc")}, {wants("a.svc")})});
  EXPECT_EQ(skips(r), Skips{});
  EXPECT_EQ(r.warnings, (Strings{"dependency cycle: a optionally requires a.svc (^1) from a; dropping a's optional "
                                 "dependency on a.svc, so a starts without it"}));
  EXPECT_EQ(r.order, (Strings{"a"}));
  EXPECT_EQ(r.wiring, (Wiring{{"a", {}}}));
}

TEST(ResolverCycle, OptionalEdgeInACycleIsDroppedWithAWarning) {
  ResolveResult r = resolve_components({comp("a", {provides("a.svc")}, {needs("b.svc")}),
                                        comp("b", {provides("b.svc")}, {wants("a.svc")})});
  EXPECT_EQ(skips(r), Skips{});
  EXPECT_EQ(r.errors, Strings{});
  EXPECT_EQ(r.warnings, (Strings{"dependency cycle: a requires b.svc (^1) from b -> b optionally requires a.svc (^1) "
                                 "from a; dropping b's optional dependency on a.svc, so b starts without it"}));
  EXPECT_EQ(r.order, (Strings{"b", "a"}));
  EXPECT_EQ(r.wiring, (Wiring{{"a", {{"b.svc", "b"}}}, {"b", {}}}));
  EXPECT_TRUE(r.optional_deps.empty());
}

TEST(ResolverCycle, OnlyTheOptionalEdgesNeededAreDropped) {
  // Two optional edges on one cycle: dropping the first (smallest consumer) suffices, so the
  // second stays wired.
  ResolveResult r = resolve_components({comp("a", {provides("a.svc")}, {wants("b.svc")}),
                                        comp("b", {provides("b.svc")}, {wants("c.svc")}),
                                        comp("c", {provides("c.svc")}, {needs("a.svc")})});
  EXPECT_EQ(skips(r), Skips{});
  EXPECT_EQ(r.warnings,
            (Strings{"dependency cycle: a optionally requires b.svc (^1) from b -> b optionally requires c.svc (^1) from c "
                     "-> c requires a.svc (^1) from a; dropping a's optional dependency on b.svc, so a starts without it"}));
  EXPECT_EQ(r.order, (Strings{"a", "c", "b"}));
  EXPECT_EQ(r.wiring, (Wiring{{"a", {}}, {"b", {{"c.svc", "c"}}}, {"c", {{"a.svc", "a"}}}}));
  EXPECT_EQ(r.optional_deps, (std::map<std::string, std::set<std::string>>{{"b", {"c.svc"}}}));
}

TEST(ResolverCycle, BackbeatOptionalCycleInTheContractGraph) {
  // backbeat wants the election service, and everything on the way there optionally wants backbeat.
  ResolveResult r = resolve_components({
      comp("p2p", {provides("chorus.p2p.host")}, {wants("chorus.backbeat")}),
      comp("gossip", {provides("chorus.pubsub")}, {needs("chorus.p2p.host"), wants("chorus.backbeat")}),
      comp("election", {provides("chorus.election")}, {needs("chorus.pubsub"), wants("chorus.backbeat")}),
      comp("backbeat", {provides("chorus.backbeat")}, {wants("chorus.election")}),
  });
  EXPECT_EQ(skips(r), Skips{});
  EXPECT_EQ(r.warnings, (Strings{"dependency cycle: backbeat optionally requires chorus.election (^1) from election -> "
                                 "election optionally requires chorus.backbeat (^1) from backbeat; dropping backbeat's "
                                 "optional dependency on chorus.election, so backbeat starts without it"}));
  EXPECT_EQ(r.order, (Strings{"backbeat", "p2p", "gossip", "election"}));
  EXPECT_EQ(r.wiring.at("backbeat"), (std::map<std::string, std::string>{}));
  EXPECT_EQ(r.wiring.at("election"),
            (std::map<std::string, std::string>{{"chorus.backbeat", "backbeat"}, {"chorus.pubsub", "gossip"}}));
}

TEST(ResolverCycle, RequiredCycleWinsOverOptionalEdgesInTheSameKnot) {
  // a <-> b is a required cycle; c hangs on it through an optional edge. The required cycle is
  // skipped, c loses its (now absent) optional provider, and nothing is dropped with a warning.
  ResolveResult r = resolve_components({comp("a", {provides("a.svc")}, {needs("b.svc")}),
                                        comp("b", {provides("b.svc")}, {needs("a.svc"), wants("c.svc")}),
                                        comp("c", {provides("c.svc")}, {wants("a.svc")})});
  const std::string cycle = "dependency cycle: a requires b.svc (^1) from b -> b requires a.svc (^1) from a";
  EXPECT_EQ(skips(r), (Skips{{"a", cycle}, {"b", cycle}}));
  EXPECT_EQ(r.warnings, Strings{});
  EXPECT_EQ(r.order, (Strings{"c"}));
  EXPECT_EQ(r.wiring, (Wiring{{"c", {}}}));
}

TEST(ResolverCycle, EachMemberOfATangledCycleNamesACycleThroughIt) {
  // a <-> b <-> c: no single simple cycle covers all three.
  ResolveResult r = resolve_components({comp("a", {provides("a.svc")}, {needs("b.svc")}),
                                        comp("b", {provides("b.svc")}, {needs("c.svc"), needs("a.svc")}),
                                        comp("c", {provides("c.svc")}, {needs("b.svc")})});
  EXPECT_EQ(skips(r), (Skips{{"a", "dependency cycle: a requires b.svc (^1) from b -> b requires a.svc (^1) from a"},
                             {"b", "dependency cycle: a requires b.svc (^1) from b -> b requires a.svc (^1) from a"},
                             {"c", "dependency cycle: b requires c.svc (^1) from c -> c requires b.svc (^1) from b"}}));
}

TEST(ResolverCycle, MissingDependencyIsReportedBeforeTheCycle) {
  // a would be in a cycle with b, but a cannot start anyway; b is then skipped because of a.
  ResolveResult r = resolve_components({comp("a", {provides("a.svc")}, {needs("b.svc"), needs("gone")}),
                                        comp("b", {provides("b.svc")}, {needs("a.svc")})});
  const std::string a = "requires gone (^1), which no enabled plugin provides";
  EXPECT_EQ(skips(r), (Skips{{"a", a}, {"b", "requires a.svc from 'a', which was skipped: " + a}}));
}

// ---- late dependencies --------------------------------------------------------------------------

TEST(ResolverLate, LateDependencyIsWiredWithoutAnOrderingEdge) {
  ResolveResult r = resolve_components({comp("a", {}, {later("z.svc")}), comp("z", {provides("z.svc")})});
  expect_clean(r);
  EXPECT_EQ(r.order, (Strings{"a", "z"}));  // by id: no edge makes z go first
  EXPECT_EQ(r.wiring.at("a"), (std::map<std::string, std::string>{{"z.svc", "z"}}));
}

TEST(ResolverLate, LateDependencyBreaksWhatWouldBeACycle) {
  ResolveResult r = resolve_components({comp("a", {provides("a.svc")}, {needs("b.svc")}),
                                        comp("b", {provides("b.svc")}, {later("a.svc")})});
  expect_clean(r);
  EXPECT_EQ(r.order, (Strings{"b", "a"}));
  EXPECT_EQ(r.wiring, (Wiring{{"a", {{"b.svc", "b"}}}, {"b", {{"a.svc", "a"}}}}));
}

TEST(ResolverLate, RequiredLateDependencyStillNeedsAProvider) {
  ResolveResult r = resolve_components({comp("a", {provides("a.svc")}, {later("z.svc")}),
                                        comp("b", {}, {later("a.svc", "^1", true)}),  // optional: fine
                                        comp("p", {provides("q.svc")}, {needs("missing")}),
                                        comp("c", {}, {later("q.svc")})});
  const std::string p = "requires missing (^1), which no enabled plugin provides";
  EXPECT_EQ(skips(r), (Skips{{"a", "requires z.svc (^1), which no enabled plugin provides"},
                             {"c", "requires q.svc from 'p', which was skipped: " + p},
                             {"p", p}}));
  EXPECT_EQ(r.order, (Strings{"b"}));
}

// ---- dependents_of ------------------------------------------------------------------------------

TEST(ResolverDependents, FollowsRequiredAndLateEdgesButNotOptionalOnes) {
  ResolveResult r = resolve_components({comp("a", {provides("x")}),
                                        comp("b", {provides("b.svc")}, {needs("x")}),
                                        comp("c", {provides("c.svc")}, {wants("x")}),
                                        comp("d", {}, {needs("b.svc"), wants("c.svc")}),
                                        comp("e", {}, {later("x")}),
                                        comp("f", {}, {needs("c.svc")})});
  expect_clean(r);
  EXPECT_EQ(r.order, (Strings{"a", "b", "c", "d", "e", "f"}));
  EXPECT_EQ(dependents_of(r, "a"), (Strings{"b", "d", "e"}));  // not c (optional), so not f either
  EXPECT_EQ(dependents_of(r, "b"), (Strings{"d"}));
  EXPECT_EQ(dependents_of(r, "c"), (Strings{"f"}));
  EXPECT_EQ(dependents_of(r, "d"), Strings{});
  EXPECT_EQ(dependents_of(r, "unknown"), Strings{});
}

TEST(ResolverDependents, ResultIsInStartOrder) {
  ResolveResult r = resolve_components({comp("z-root", {provides("root")}),
                                        comp("m", {provides("m.svc")}, {needs("root")}),
                                        comp("a", {}, {needs("m.svc")}),
                                        comp("y", {}, {needs("root")})});
  EXPECT_EQ(r.order, (Strings{"z-root", "m", "a", "y"}));
  EXPECT_EQ(dependents_of(r, "z-root"), (Strings{"m", "a", "y"}));
}

TEST(ResolverDependents, ServiceRequiredBothWaysCountsAsRequired) {
  ResolveResult r = resolve_components({comp("p", {provides("x")}), comp("c", {}, {wants("x"), needs("x", "^1.0")})});
  expect_clean(r);
  EXPECT_TRUE(r.optional_deps.empty());
  EXPECT_EQ(dependents_of(r, "p"), (Strings{"c"}));
}

// ---- input hygiene ------------------------------------------------------------------------------

TEST(ResolverInput, DuplicateIdIsAnError) {
  ResolveResult r = resolve_components({comp("a", {provides("x")}), comp("a"), comp("b", {}, {needs("x")})});
  EXPECT_EQ(r.errors, (Strings{"plugin 'a' is listed twice; using the first"}));
  EXPECT_EQ(r.order, (Strings{"a", "b"}));
  EXPECT_EQ(r.wiring.at("b"), (std::map<std::string, std::string>{{"x", "a"}}));
}

}  // namespace
}  // namespace chorus::host
