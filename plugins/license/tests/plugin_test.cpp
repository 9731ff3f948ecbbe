// license on the SDK's FakeHost (chorus/testing/fake_host.hpp): the plugin's code linked into this
// test and driven through its C ABI as the agent drives it. A valid licence needs a server, which
// the integration suite (test_plugin.py) provides; here: the config, the schema and failing closed.
#include <arpa/inet.h>
#include <chorus/services/license_v1.h>
#include <chorus/testing/fake_host.hpp>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "settings.hpp"

extern "C" const chorus_plugin_descriptor *chorus_plugin_entry_v1(const chorus_abi_info *) noexcept;

namespace chorus::license {
namespace {

using json = nlohmann::json;

json config_with_defaults(json cfg) {
  const auto schema = json::parse(kConfigSchema);
  EXPECT_FALSE(chorus::config_schema::validate_and_default(schema, cfg, "config").has_value());
  return cfg;
}

std::optional<std::string> no_env(const char *) { return std::nullopt; }

constexpr const char *kInfo = R"({"agent_id":"agent-7","cluster_id":"cluster-a","state_dir":"/tmp/x","host_version":"1.2.3"})";

TEST(Settings, SchemaDefaultsAndHostFacts) {
  const auto cfg = config_with_defaults({{"license_id", "lic-1"}, {"endpoint", "https://lic.example/"}});
  const Settings s = parse_settings(cfg.dump(), kInfo, &no_env);
  EXPECT_EQ(s.validate_url(), "https://lic.example/v1/licenses/validate");
  EXPECT_EQ(s.cluster_id, "cluster-a");
  EXPECT_EQ(s.agent_id, "agent-7");
  EXPECT_EQ(s.version, "1.2.3");
  EXPECT_EQ(s.timing.revalidate_interval_ms, 3600000);
  EXPECT_EQ(s.timing.grace_period_ms, 72LL * 3600000);
  EXPECT_EQ(s.timing.failure_threshold, 3u);
  EXPECT_EQ(s.timing.open_ms, 60000);
  EXPECT_EQ(s.request_timeout_ms, 10000);
}

TEST(Settings, EnvironmentOverridesTheConfig) {
  const auto cfg = config_with_defaults({{"license_id", "lic-1"}, {"endpoint", "http://a"}, {"cluster_id", "own"}});
  const Settings s = parse_settings(cfg.dump(), kInfo, [](const char *name) -> std::optional<std::string> {
    if (std::string(name) == "CHORUS_LICENSE_ID") return "lic-env";
    if (std::string(name) == "CHORUS_LICENSE_ENDPOINT") return "http://env:8080";
    return std::nullopt;
  });
  EXPECT_EQ(s.license_id, "lic-env");
  EXPECT_EQ(s.endpoint, "http://env:8080");
  EXPECT_EQ(s.cluster_id, "own");
}

TEST(Settings, RefusesToRunWithoutAnEndpointOrALicenceId) {
  const struct {
    json cfg;
    const char *names;
  } cases[] = {{{{"license_id", "lic-1"}}, "endpoint is empty"},
               {{{"endpoint", "http://a"}}, "license_id is empty"},
               {{{"license_id", "lic-1"}, {"endpoint", "ftp://a"}}, "not an http"}};
  for (const auto &c : cases) {
    try {
      parse_settings(config_with_defaults(c.cfg).dump(), kInfo, &no_env);
      ADD_FAILURE() << "accepted " << c.cfg.dump();
    } catch (const chorus::Error &e) {
      EXPECT_EQ(e.code(), CHORUS_E_CONFIG);
      EXPECT_NE(std::string(e.what()).find(c.names), std::string::npos) << e.what();
    }
  }
}

TEST(Plugin, DescriptorProvidesTheServiceAndDeclaresTheSchema) {
  const chorus_abi_info abi = chorus::testing::fake_abi_info();
  const chorus_plugin_descriptor *d = chorus_plugin_entry_v1(&abi);
  ASSERT_NE(d, nullptr);
  EXPECT_STREQ(d->id, "license");
  ASSERT_EQ(d->provides_count, 1u);
  EXPECT_STREQ(d->provides[0].service, CHORUS_LICENSE_SERVICE);
  EXPECT_EQ(d->provides[0].major, 1);
  const auto schema = json::parse(d->config_schema_json);
  EXPECT_EQ(schema.at("properties").at("endpoint").at("default"), "");
}

// A local port that refuses connections: bound, never listening.
class RefusingPort {
 public:
  RefusingPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr *>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~RefusingPort() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(Plugin, UnreachableServerWithoutACacheFailsStartClosed) {
  char tmpl[] = "/tmp/license-plugin-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  RefusingPort refusing;
  chorus::testing::FakeHost host;
  host.set_host_info(json{{"agent_id", "a"}, {"cluster_id", "c"}, {"state_dir", dir}, {"host_version", "0"}}.dump());
  const auto cfg = config_with_defaults(
      {{"license_id", "lic-1"}, {"endpoint", "http://127.0.0.1:" + std::to_string(refusing.port())}});
  {
    auto p = chorus::testing::load(&chorus_plugin_entry_v1, host, cfg.dump());
    EXPECT_EQ(p.status(), CHORUS_E_UNAVAILABLE);
    EXPECT_NE(p.message().find("unreachable and no valid cached licence"), std::string::npos) << p.message();
  }
  EXPECT_EQ(host.metric_value("chorus_license_validations_total", {"unreachable"}), 1.0);
  EXPECT_TRUE(host.violations().empty()) << host.violations().front();
  std::filesystem::remove_all(dir);
}

TEST(Plugin, AnEmptyEndpointFailsCreateWithAClearError) {
  chorus::testing::FakeHost host;
  auto p = chorus::testing::load(&chorus_plugin_entry_v1, host, config_with_defaults({{"license_id", "x"}}).dump());
  EXPECT_EQ(p.status(), CHORUS_E_CONFIG);
  EXPECT_NE(p.message().find("CHORUS_LICENSE_ENDPOINT"), std::string::npos) << p.message();
}

}  // namespace
}  // namespace chorus::license
