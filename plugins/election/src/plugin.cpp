// The election plugin: one admin per cluster, fenced by terms, over signed pubsub messages; provided
// as chorus.election v1 and over HTTP (README.md). The node (node.cpp) runs the election on its own
// thread; this file is the descriptor and the glue to the host.
#include <memory>
#include <mutex>
#include <stdexcept>

#include <chorus/plugin.hpp>
#include <chorus/services/election_v1.h>
#include <chorus/services/p2p_host_v1.h>
#include <chorus/services/pubsub_v1.h>
#include <nlohmann/json.hpp>

#include "http_routes.hpp"
#include "node.hpp"
#include "service_table.hpp"
#include "settings.hpp"
#include "store/term_store.hpp"

namespace chorus::election {
namespace {

// The agent's network identity: every id in the election's messages is a libp2p peer id, the one
// gossip signs with, so that a message's claimed author can be checked against its signer.
std::string local_peer_id(chorus::Host &host) {
  auto p2p = host.acquire<chorus_p2p_host_v1>(CHORUS_P2P_HOST_SERVICE, "^1");
  if (!p2p.has<&chorus_p2p_host_v1::local_peer_id>())
    throw chorus::Error(CHORUS_E_VERSION, "election: the chorus.p2p.host provider lacks local_peer_id");
  char text[128] = {};
  size_t len = 0;
  chorus::check(p2p.table()->local_peer_id(p2p.self(), nullptr, 0, nullptr, text, sizeof text, &len),
                "election: local_peer_id");
  if (len == 0 || len >= sizeof text) throw chorus::Error(CHORUS_E_INTERNAL, "election: empty local peer id");
  return std::string(text, len);
}

class ElectionPlugin final : public chorus::Plugin, public NodeSource {
 public:
  ElectionPlugin(chorus::Host &host, std::string_view config_json) : host_(host), table_(make_election_table()) {
    try {
      settings_ = parse_settings(config_json);
    } catch (const std::invalid_argument &e) {
      throw chorus::Error(CHORUS_E_CONFIG, e.what());
    }
    metrics_ = define_metrics(host_);
    try {
      register_routes(host_, *this);
    } catch (const chorus::Error &e) {
      if (e.code() != CHORUS_E_UNAVAILABLE && e.code() != CHORUS_E_UNSUPPORTED) throw;  // no HTTP listener
    }
  }

  ~ElectionPlugin() override { stop_node(); }

  void start() override {
    auto pubsub = host_.acquire<chorus_pubsub_v1>(CHORUS_PUBSUB_SERVICE, "^1");
    if (!pubsub.has<&chorus_pubsub_v1::publish_raw>() || !pubsub.has<&chorus_pubsub_v1::add_validator>() ||
        !pubsub.has<&chorus_pubsub_v1::subscribe>())
      throw chorus::Error(CHORUS_E_VERSION, "election: the chorus.pubsub provider lacks publish_raw or validators");
    const std::string self = local_peer_id(host_);
    std::string state_dir;
    const auto info = nlohmann::json::parse(host_.host_info(), nullptr, false);
    if (info.is_object() && info.contains("state_dir") && info["state_dir"].is_string())
      state_dir = info["state_dir"].get<std::string>();
    std::unique_ptr<TermStore> store;
    try {
      store = TermStore::open(state_file_path(settings_, state_dir));
    } catch (const TermStoreError &e) {
      throw chorus::Error(CHORUS_E_IO, e.what());
    }
    auto n = std::make_shared<Node>(host_, settings_, metrics_, std::move(pubsub), self, std::move(store));
    n->start();
    std::lock_guard lk(mu_);
    node_ = std::move(n);
  }

  void stop(std::chrono::milliseconds) override { stop_node(); }

  chorus::ServiceTable service(std::string_view name, uint16_t major) override {
    if (name == CHORUS_ELECTION_SERVICE && major == CHORUS_ELECTION_V1_MAJOR)
      return {&table_, static_cast<NodeSource *>(this)};
    return Plugin::service(name, major);
  }

  std::shared_ptr<Node> node() override {
    std::lock_guard lk(mu_);
    return node_;
  }

 private:
  void stop_node() {
    std::shared_ptr<Node> n;
    {
      std::lock_guard lk(mu_);
      n = std::move(node_);
    }
    if (n) n->stop();
  }

  chorus::Host &host_;
  Settings settings_;
  NodeMetrics metrics_;
  chorus_election_v1 table_;
  std::mutex mu_;
  std::shared_ptr<Node> node_;
};

constexpr chorus_provide kProvides[] = {
    chorus::provide(CHORUS_ELECTION_SERVICE, CHORUS_ELECTION_V1_MAJOR, CHORUS_ELECTION_V1_MINOR)};
constexpr chorus_require kRequires[] = {chorus::require(CHORUS_PUBSUB_SERVICE, "^1"),
                                        chorus::require(CHORUS_P2P_HOST_SERVICE, "^1")};

}  // namespace
}  // namespace chorus::election

CHORUS_PLUGIN(chorus::election::ElectionPlugin, .id = "election", .version = "0.1.0",
              .description = "one admin per cluster, fenced by terms (chorus.election v1)", .vendor = "CHORUS",
              .license = "Apache-2.0", .provides = chorus::election::kProvides,
              .requirements = chorus::election::kRequires, .config_schema = chorus::election::kConfigSchema);
