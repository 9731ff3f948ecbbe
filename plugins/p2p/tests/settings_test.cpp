#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>

#include <chorus/testing/fake_host.hpp>

#include "settings.hpp"

namespace chorus::p2p {
namespace {

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const char *name) -> std::optional<std::string> {
    auto it = vars.find(name);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
}

const std::string kPeer = "/ip4/10.0.0.1/tcp/9000/p2p/12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq";
const std::string kPeer2 = "/ip4/10.0.0.2/tcp/9000/p2p/12D3KooWPqT2nMDSiXUSx5D7fasaxhxKigVhcqfkKqrLghCq9jxz";
const std::string kPeer3 = "/ip4/10.0.0.3/tcp/9000/p2p/12D3KooWLdJAwPtyQ5RFnr9wGXsQzpf3P2SeqFbYkqbfVehLu4Ns";

// What the plugin reads for the config section `cfg`: the host applies kConfigSchema first (through
// the fake host's copy of that step), then parse_settings sees a complete, valid config.
Settings settings_of(std::string_view cfg, const std::string &state_dir, std::map<std::string, std::string> env = {}) {
  const auto prepared = chorus::testing::prepare_config(kConfigSchema, "p2p", cfg);
  if (!prepared.ok()) throw std::invalid_argument(prepared.error);
  return parse_settings(prepared.json, state_dir, env_of(std::move(env)));
}

std::string error_of(std::string_view cfg, std::map<std::string, std::string> env = {}) {
  try {
    settings_of(cfg, "/var/lib/chorus", std::move(env));
  } catch (const std::invalid_argument &e) {
    return e.what();
  }
  return "";
}

TEST(P2PSettings, Defaults) {
  const auto s = settings_of("{}", "/var/lib/chorus", {});
  EXPECT_EQ(s.listen, (std::vector<std::string>{"/ip4/0.0.0.0/tcp/9000", "/ip6/::/tcp/9000"}));
  EXPECT_EQ(s.key_file, "/var/lib/chorus/p2p/identity.key");
  EXPECT_EQ(s.bootstrap_source, "none");
  EXPECT_EQ(s.limits.max_connections, 50u);
  EXPECT_EQ(s.limits.max_connections_per_ip, 3u);
  EXPECT_EQ(s.limits.dial_timeout_ms, 30000u);
  EXPECT_EQ(s.limits.high_watermark, 48u);
  EXPECT_EQ(s.limits.low_watermark, 40u);
  EXPECT_EQ(s.limits.dial_backoff_base_ms, 5000u);
  EXPECT_EQ(s.limits.dial_backoff_max_ms, 300000u);
  EXPECT_EQ(s.limits.stream_send_buffer, 256u * 1024);
  EXPECT_EQ(s.agent_version, "chorus-agent/0.1.0");
  EXPECT_TRUE(s.announce_loopback);
}

TEST(P2PSettings, PortFromEnvironment) {
  auto s = settings_of("{}", "/s", {{"CHORUS_P2P_PORT", "9100"}});
  EXPECT_EQ(s.listen[0], "/ip4/0.0.0.0/tcp/9100");
  s = settings_of(R"({"listen":["/ip4/127.0.0.1/tcp/9000"]})", "/s", {{"CHORUS_P2P_PORT", "9200"}});
  EXPECT_EQ(s.listen, std::vector<std::string>{"/ip4/127.0.0.1/tcp/9200"});
  EXPECT_NE(error_of("{}", {{"CHORUS_P2P_PORT", "http"}}).find("CHORUS_P2P_PORT"), std::string::npos);
}

TEST(P2PSettings, BootstrapPrecedenceAssignmentThenConfigThenEnv) {
  const std::string env_peers = kPeer3 + " , " + kPeer3;
  auto s = settings_of("{}", "/s", {{"CHORUS_BOOTSTRAP_PEERS", kPeer3}});
  EXPECT_EQ(s.bootstrap_source, "env");
  EXPECT_EQ(s.bootstrap_peers, std::vector<std::string>{kPeer3});

  const std::string cfg = R"({"bootstrap_peers":[")" + kPeer2 + R"("]})";
  s = settings_of(cfg, "/s", {{"CHORUS_BOOTSTRAP_PEERS", kPeer3}});
  EXPECT_EQ(s.bootstrap_source, "config");
  EXPECT_EQ(s.bootstrap_peers, std::vector<std::string>{kPeer2});

  char path[] = "/tmp/p2p-assignment-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << R"({"bootstrap_peers":[")" << kPeer << R"("]})";
  const std::string with_assignment = R"({"assignment_file":")" + std::string(path) + R"(","bootstrap_peers":[")" + kPeer2 + R"("]})";
  s = settings_of(with_assignment, "/s", {{"CHORUS_BOOTSTRAP_PEERS", kPeer3}});
  EXPECT_EQ(s.bootstrap_source, "assignment");
  EXPECT_EQ(s.bootstrap_peers, std::vector<std::string>{kPeer});
  std::remove(path);
}

TEST(P2PSettings, UnsetLimitsFollowTheOnesGiven) {
  const auto s = settings_of(R"({"limits":{"max_connections":10,"dial_backoff_max_ms":1000}})", "/s", {});
  EXPECT_EQ(s.limits.high_watermark, 10u);
  EXPECT_EQ(s.limits.low_watermark, 8u);
  EXPECT_EQ(s.limits.dial_backoff_base_ms, 1000u);
}

TEST(P2PSettings, ErrorsNameTheKey) {
  EXPECT_NE(error_of(R"({"listen":["/ip4/1.2.3.4/udp/9"]})").find("plugins.p2p.config.listen[0]"), std::string::npos);
  EXPECT_NE(error_of(R"({"listen":"x"})").find("plugins.p2p.config.listen: expected an array"), std::string::npos);
  EXPECT_EQ(error_of(R"([1])"), "plugins.p2p.config: not an object");
  EXPECT_NE(error_of("{}", {{"CHORUS_BOOTSTRAP_PEERS", "nonsense"}}).find("CHORUS_BOOTSTRAP_PEERS"), std::string::npos);
}

// The CHORUS runtime carries on without an assignment it cannot use: a warning, and the static
// configuration's peers.
TEST(P2PSettings, AnUnusableAssignmentIsAWarningNotAnError) {
  const auto s = settings_of(R"({"assignment_file":"/nonexistent/a.json","bootstrap_peers":[")" + kPeer2 + R"("]})",
                             "/s", {});
  EXPECT_NE(s.assignment_problem.find("cannot read"), std::string::npos) << s.assignment_problem;
  EXPECT_EQ(s.bootstrap_source, "config");
  EXPECT_EQ(s.bootstrap_peers, std::vector<std::string>{kPeer2});
  char path[] = "/tmp/p2p-assignment-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << "not json";
  const auto bad = settings_of(R"({"assignment_file":")" + std::string(path) + R"("})", "/s", {});
  EXPECT_NE(bad.assignment_problem.find("not a JSON object"), std::string::npos) << bad.assignment_problem;
  EXPECT_EQ(bad.bootstrap_source, "none");
  std::remove(path);
}

// The schema's own checks: what used to be checked twice is now checked once, by the host's code.
TEST(P2PSettings, SchemaRefusesRangesTypesAndUnknownKeys) {
  EXPECT_EQ(error_of(R"({"limits":{"max_connections":0}})"),
            "plugins.p2p.config.limits.max_connections: 0 is less than the minimum 1");
  EXPECT_EQ(error_of(R"({"limits":{"bogus":1}})"), "plugins.p2p.config.limits: unknown key 'bogus'");
  EXPECT_EQ(error_of(R"({"colour":"red"})"), "plugins.p2p.config: unknown key 'colour'");
  EXPECT_EQ(error_of(R"({"announce_loopback":"yes"})"),
            "plugins.p2p.config.announce_loopback: expected a boolean, got string");
  EXPECT_EQ(error_of(R"({"limits":{"inbound_per_second":0}})"),
            "plugins.p2p.config.limits.inbound_per_second: 0 is less than the minimum 0.001");
}

// Checks the schema cannot express stay in parse_settings and name the key.
TEST(P2PSettings, CrossFieldAndAddressChecks) {
  EXPECT_EQ(error_of(R"({"limits":{"low_watermark":50,"high_watermark":10}})"),
            "p2p.config.limits.low_watermark: must not exceed limits.high_watermark");
  EXPECT_EQ(error_of(R"({"limits":{"max_connections":10,"high_watermark":20}})"),
            "p2p.config.limits.high_watermark: must not exceed limits.max_connections");
  EXPECT_EQ(error_of(R"({"limits":{"dial_backoff_base_ms":10,"dial_backoff_max_ms":5}})"),
            "p2p.config.limits.dial_backoff_base_ms: must not exceed limits.dial_backoff_max_ms");
  EXPECT_NE(error_of(R"({"bootstrap_peers":["/ip4/1.2.3.4/tcp/9/p2p/QmNotAPeer"]})").find("p2p.config.bootstrap_peers[0]"),
            std::string::npos);
}

// A config the host did not complete is refused plainly, not read as zeros.
TEST(P2PSettings, IncompleteConfigIsRefused) {
  EXPECT_THROW(parse_settings("{}", "/s", env_of({})), std::invalid_argument);
}

}  // namespace
}  // namespace chorus::p2p
