#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>

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

std::string error_of(std::string_view cfg, std::map<std::string, std::string> env = {}) {
  try {
    parse_settings(cfg, "/var/lib/chorus", env_of(std::move(env)));
  } catch (const std::invalid_argument &e) {
    return e.what();
  }
  return "";
}

TEST(P2PSettings, Defaults) {
  const auto s = parse_settings("{}", "/var/lib/chorus", env_of({}));
  EXPECT_EQ(s.listen, (std::vector<std::string>{"/ip4/0.0.0.0/tcp/9000", "/ip6/::/tcp/9000"}));
  EXPECT_EQ(s.key_file, "/var/lib/chorus/p2p/identity.key");
  EXPECT_EQ(s.bootstrap_source, "none");
  EXPECT_EQ(s.limits.max_connections, 50u);
  EXPECT_EQ(s.limits.max_connections_per_ip, 3u);
  EXPECT_EQ(s.limits.dial_timeout_ms, 30000u);
}

TEST(P2PSettings, PortFromEnvironment) {
  auto s = parse_settings("{}", "/s", env_of({{"CHORUS_P2P_PORT", "9100"}}));
  EXPECT_EQ(s.listen[0], "/ip4/0.0.0.0/tcp/9100");
  s = parse_settings(R"({"listen":["/ip4/127.0.0.1/tcp/9000"]})", "/s", env_of({{"CHORUS_P2P_PORT", "9200"}}));
  EXPECT_EQ(s.listen, std::vector<std::string>{"/ip4/127.0.0.1/tcp/9200"});
  EXPECT_NE(error_of("{}", {{"CHORUS_P2P_PORT", "http"}}).find("CHORUS_P2P_PORT"), std::string::npos);
}

TEST(P2PSettings, BootstrapPrecedenceAssignmentThenConfigThenEnv) {
  const std::string env_peers = kPeer3 + " , " + kPeer3;
  auto s = parse_settings("{}", "/s", env_of({{"CHORUS_BOOTSTRAP_PEERS", kPeer3}}));
  EXPECT_EQ(s.bootstrap_source, "env");
  EXPECT_EQ(s.bootstrap_peers, std::vector<std::string>{kPeer3});

  const std::string cfg = R"({"bootstrap_peers":[")" + kPeer2 + R"("]})";
  s = parse_settings(cfg, "/s", env_of({{"CHORUS_BOOTSTRAP_PEERS", kPeer3}}));
  EXPECT_EQ(s.bootstrap_source, "config");
  EXPECT_EQ(s.bootstrap_peers, std::vector<std::string>{kPeer2});

  char path[] = "/tmp/p2p-assignment-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << R"({"bootstrap_peers":[")" << kPeer << R"("]})";
  const std::string with_assignment = R"({"assignment_file":")" + std::string(path) + R"(","bootstrap_peers":[")" + kPeer2 + R"("]})";
  s = parse_settings(with_assignment, "/s", env_of({{"CHORUS_BOOTSTRAP_PEERS", kPeer3}}));
  EXPECT_EQ(s.bootstrap_source, "assignment");
  EXPECT_EQ(s.bootstrap_peers, std::vector<std::string>{kPeer});
  std::remove(path);
}

TEST(P2PSettings, UnsetLimitsFollowTheOnesGiven) {
  const auto s = parse_settings(R"({"limits":{"max_connections":10,"dial_backoff_max_ms":1000}})", "/s", env_of({}));
  EXPECT_EQ(s.limits.high_watermark, 10u);
  EXPECT_EQ(s.limits.low_watermark, 8u);
  EXPECT_EQ(s.limits.dial_backoff_base_ms, 1000u);
}

TEST(P2PSettings, ErrorsNameTheKey) {
  EXPECT_NE(error_of(R"({"listen":["/ip4/1.2.3.4/udp/9"]})").find("p2p.config.listen[0]"), std::string::npos);
  EXPECT_NE(error_of(R"({"listen":"x"})").find("p2p.config.listen"), std::string::npos);
  EXPECT_NE(error_of(R"({"bootstrap_peers":["/ip4/1.2.3.4/tcp/9"]})").find("has no /p2p/"), std::string::npos);
  EXPECT_NE(error_of(R"({"limits":{"max_connections":0}})").find("p2p.config.limits.max_connections"), std::string::npos);
  EXPECT_NE(error_of(R"({"limits":{"bogus":1}})").find("p2p.config.limits.bogus: unknown key"), std::string::npos);
  EXPECT_NE(error_of(R"({"limits":{"low_watermark":50,"high_watermark":10}})").find("low_watermark"), std::string::npos);
  EXPECT_NE(error_of(R"({"colour":"red"})").find("p2p.config.colour: unknown key"), std::string::npos);
  EXPECT_NE(error_of(R"([1])").find("must be an object"), std::string::npos);
  EXPECT_NE(error_of("{}", {{"CHORUS_BOOTSTRAP_PEERS", "nonsense"}}).find("CHORUS_BOOTSTRAP_PEERS"), std::string::npos);
  EXPECT_NE(error_of(R"({"assignment_file":"/nonexistent/a.json"})").find("cannot read"), std::string::npos);
}

}  // namespace
}  // namespace chorus::p2p
