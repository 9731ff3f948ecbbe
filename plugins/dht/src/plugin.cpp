// The dht plugin: Kademlia over chorus.p2p.host with a durable record store, provided as chorus.dht v1
// and over HTTP (README.md). The node (node.cpp) does the work on its own threads; this file is the
// descriptor and the glue to the host.
#include <memory>
#include <mutex>
#include <stdexcept>

#include <chorus/plugin.hpp>
#include <chorus/services/dht_v1.h>
#include <chorus/services/p2p_host_v1.h>
#include <nlohmann/json.hpp>

#include "http_routes.hpp"
#include "node.hpp"
#include "service_table.hpp"
#include "settings.hpp"

namespace chorus::dht {
namespace {

class DhtPlugin final : public chorus::Plugin, public NodeSource {
 public:
  DhtPlugin(chorus::Host &host, std::string_view config_json) : host_(host), table_(make_dht_table()) {
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

  ~DhtPlugin() override { stop_node(); }

  void start() override {
    auto p2p = host_.acquire<chorus_p2p_host_v1>(CHORUS_P2P_HOST_SERVICE, "^1");
    if (!p2p.has<&chorus_p2p_host_v1::sign>() || !p2p.has<&chorus_p2p_host_v1::open_stream>() ||
        !p2p.has<&chorus_p2p_host_v1::set_protocol_handler>() || !p2p.has<&chorus_p2p_host_v1::subscribe>() ||
        !p2p.has<&chorus_p2p_host_v1::add_addrs>() || !p2p.has<&chorus_p2p_host_v1::get_info_json>())
      throw chorus::Error(CHORUS_E_VERSION, "dht: the chorus.p2p.host provider lacks the stream, signing or address slots");
    std::string state_dir;
    auto info = nlohmann::json::parse(host_.host_info(), nullptr, false);
    if (info.is_object() && info.contains("state_dir") && info["state_dir"].is_string())
      state_dir = info["state_dir"].get<std::string>();
    auto n = std::make_shared<Node>(host_, settings_, metrics_, std::move(p2p), state_dir);
    n->start();
    std::lock_guard lk(mu_);
    node_ = std::move(n);
  }

  void stop(std::chrono::milliseconds) override { stop_node(); }

  chorus::ServiceTable service(std::string_view name, uint16_t major) override {
    if (name == CHORUS_DHT_SERVICE && major == CHORUS_DHT_V1_MAJOR) return {&table_, static_cast<NodeSource *>(this)};
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
  chorus_dht_v1 table_;
  std::mutex mu_;
  std::shared_ptr<Node> node_;
};

constexpr chorus_provide kProvides[] = {chorus::provide(CHORUS_DHT_SERVICE, CHORUS_DHT_V1_MAJOR, CHORUS_DHT_V1_MINOR)};
constexpr chorus_require kRequires[] = {chorus::require(CHORUS_P2P_HOST_SERVICE, "^1")};

}  // namespace
}  // namespace chorus::dht

CHORUS_PLUGIN(chorus::dht::DhtPlugin, .id = "dht", .version = "0.1.0",
              .description = "Kademlia DHT over libp2p with a durable record store (chorus.dht v1)", .vendor = "CHORUS",
              .license = "Apache-2.0", .provides = chorus::dht::kProvides, .requirements = chorus::dht::kRequires,
              .config_schema = chorus::dht::kConfigSchema);
