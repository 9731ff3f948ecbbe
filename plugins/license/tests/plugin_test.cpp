// license on the SDK's FakeHost (chorus/testing/fake_host.hpp): the plugin's code linked into this
// test and driven through its C ABI as the agent drives it. A valid licence needs a server, which
// the integration suite (test_plugin.py) provides; here: the config, the schema and failing closed.
#include <arpa/inet.h>
#include <chorus/services/license_v1.h>
#include <chorus/testing/fake_host.hpp>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

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

// A one-shot licence server: accepts one connection, keeps the request, answers `response`.
class OneShotServer {
 public:
  explicit OneShotServer(std::string response) : response_(std::move(response)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a);
    ::listen(fd_, 1);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr *>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      char buf[4096];
      // Read until the body (Content-Length) is complete.
      while (true) {
        const ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) break;
        request_.append(buf, static_cast<size_t>(n));
        const size_t head_end = request_.find("\r\n\r\n");
        if (head_end == std::string::npos) continue;
        const size_t cl = request_.find("Content-Length: ");
        const size_t want = cl == std::string::npos ? 0 : std::stoul(request_.substr(cl + 16));
        if (request_.size() >= head_end + 4 + want) break;
      }
      const std::string out = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                              std::to_string(response_.size()) + "\r\nConnection: close\r\n\r\n" + response_;
      (void)!::write(c, out.data(), out.size());
      ::close(c);
    });
  }
  ~OneShotServer() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string &request() const { return request_; }  // after the plugin's start returned

 private:
  int fd_ = -1;
  int port_ = 0;
  std::string response_;
  std::string request_;
  std::thread thread_;
};

TEST(Plugin, ValidLicenceStartsAndTheServiceReportsIt) {
  char tmpl[] = "/tmp/license-plugin-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  OneShotServer server(R"({"valid":true,"license_id":"lic-1","expires_at":"2099-01-01T00:00:00Z","features":["p2p"]})");
  chorus::testing::FakeHost host;
  host.set_host_info(json{{"agent_id", "agent-7"}, {"cluster_id", "c"}, {"state_dir", dir}, {"host_version", "9"}}.dump());
  {
    auto p = chorus::testing::load(&chorus_plugin_entry_v1, host,
                                   config_with_defaults({{"license_id", "lic-1"}, {"endpoint", server.url()}}).dump());
    ASSERT_EQ(p.status(), CHORUS_OK) << p.message();
    EXPECT_EQ(host.health().state, CHORUS_HEALTH_OK);
    EXPECT_NE(server.request().find("POST /v1/licenses/validate "), std::string::npos) << server.request();
    const auto body = json::parse(server.request().substr(server.request().find("\r\n\r\n") + 4));
    EXPECT_EQ(body.at("agent_id"), "agent-7");
    EXPECT_EQ(body.at("product"), "chorus-agent");

    chorus::ServiceTable svc;
    ASSERT_EQ(p.get_service(CHORUS_LICENSE_SERVICE, 1, &svc), CHORUS_OK) << p.message();
    const auto *table = static_cast<const chorus_license_v1 *>(svc.table);
    ASSERT_GE(table->struct_size, sizeof(chorus_license_v1));

    chorus_license_status st{};
    st.struct_size = sizeof st;
    ASSERT_EQ(table->status(svc.self, &st), CHORUS_OK);
    EXPECT_EQ(st.valid, 1);
    EXPECT_EQ(st.state, CHORUS_LICENSE_STATE_VALID);
    EXPECT_EQ(st.expires_at_unix_ms, 4070908800000);
    EXPECT_EQ(st.grace_until_unix_ms, 0);
    EXPECT_GT(st.validated_at_unix_ms, 0);
    EXPECT_STREQ(st.license_id, "lic-1");
    chorus_license_status small{};
    small.struct_size = 8;
    EXPECT_EQ(table->status(svc.self, &small), CHORUS_E_INVALID_ARG);

    chorus_buf buf{};
    chorus::ErrorBuffer err;
    ASSERT_EQ(table->status_json(svc.self, &buf, err.get()), CHORUS_OK) << err.text();
    const auto doc = json::parse(std::string(buf.data, buf.len));
    buf.release(&buf);
    EXPECT_EQ(doc.at("valid"), true);
    EXPECT_EQ(doc.at("state"), "valid");
    EXPECT_EQ(doc.at("expires_at"), "2099-01-01T00:00:00Z");
    EXPECT_EQ(doc.at("features"), json::array({"p2p"}));
    EXPECT_EQ(doc.at("breaker"), "closed");
    EXPECT_EQ(host.metric_value("chorus_license_validations_total", {"valid"}), 1.0);
    EXPECT_EQ(host.metric_value("chorus_license_state"), 0.0);
    EXPECT_EQ(p.stop(), CHORUS_OK);
  }
  EXPECT_TRUE(host.violations().empty()) << host.violations().front();
  // The answer is in the cache, 0600.
  struct stat st {};
  ASSERT_EQ(::stat((dir + "/license/cache.db").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace chorus::license
