// The gossip plugin: GossipSub v1.1 publish/subscribe over chorus.p2p.host and the CHORUS pubsub
// layer, provided as chorus.pubsub v1 and over HTTP (README.md). The node (node.cpp) does the work
// on its own thread; this file is the descriptor and the glue to the host.
#include <memory>
#include <mutex>
#include <stdexcept>

#include <chorus/plugin.hpp>
#include <chorus/services/p2p_host_v1.h>
#include <chorus/services/pubsub_v1.h>

#include "http_routes.hpp"
#include "node.hpp"
#include "service_table.hpp"
#include "settings.hpp"

namespace chorus::gossip {
namespace {

using namespace std::chrono_literals;

class GossipPlugin final : public chorus::Plugin, public NodeSource {
 public:
  GossipPlugin(chorus::Host &host, std::string_view config_json) : host_(host), table_(make_pubsub_table()) {
    try {
      settings_ = parse_settings(config_json);
    } catch (const std::invalid_argument &e) {
      throw chorus::Error(CHORUS_E_CONFIG, e.what());
    }
    metrics_ = define_metrics(host_);
    try {
      sse_ = register_routes(host_, *this);
    } catch (const chorus::Error &e) {
      if (e.code() != CHORUS_E_UNAVAILABLE) throw;  // no HTTP listener: the service still works
    }
  }

  ~GossipPlugin() override { stop_node(); }

  void start() override {
    auto p2p = host_.acquire<chorus_p2p_host_v1>(CHORUS_P2P_HOST_SERVICE, "^1");
    if (!p2p.has<&chorus_p2p_host_v1::sign>() || !p2p.has<&chorus_p2p_host_v1::open_stream>() ||
        !p2p.has<&chorus_p2p_host_v1::set_protocol_handler>() || !p2p.has<&chorus_p2p_host_v1::set_read_paused>() ||
        !p2p.has<&chorus_p2p_host_v1::subscribe>() || !p2p.has<&chorus_p2p_host_v1::local_public_key>())
      throw chorus::Error(CHORUS_E_VERSION, "gossip: the chorus.p2p.host provider lacks the stream, signing or event slots");
    auto n = std::make_shared<Node>(host_, settings_, metrics_, std::move(p2p));
    n->start();
    {
      std::lock_guard lk(mu_);
      node_ = std::move(n);
    }
    if (sse_) {
      std::weak_ptr<SseRegistry> weak = sse_;
      keepalive_timer_ = host_.timer(15s, 15s, [weak] {
        if (auto r = weak.lock()) sse_keepalive(*r);
      });
    }
  }

  void stop(std::chrono::milliseconds) override { stop_node(); }

  chorus::ServiceTable service(std::string_view name, uint16_t major) override {
    if (name == CHORUS_PUBSUB_SERVICE && major == CHORUS_PUBSUB_V1_MAJOR) return {&table_, static_cast<NodeSource *>(this)};
    return Plugin::service(name, major);
  }

  std::shared_ptr<Node> node() override {
    std::lock_guard lk(mu_);
    return node_;
  }

 private:
  void stop_node() {
    if (keepalive_timer_ != 0) host_.cancel_timer(keepalive_timer_);
    keepalive_timer_ = 0;
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
  chorus_pubsub_v1 table_;
  std::shared_ptr<SseRegistry> sse_;
  uint64_t keepalive_timer_ = 0;
  std::mutex mu_;
  std::shared_ptr<Node> node_;
};

constexpr chorus_provide kProvides[] = {chorus::provide(CHORUS_PUBSUB_SERVICE, CHORUS_PUBSUB_V1_MAJOR, CHORUS_PUBSUB_V1_MINOR)};
constexpr chorus_require kRequires[] = {chorus::require(CHORUS_P2P_HOST_SERVICE, "^1")};

}  // namespace
}  // namespace chorus::gossip

CHORUS_PLUGIN(chorus::gossip::GossipPlugin, .id = "gossip", .version = "0.1.0",
              .description = "GossipSub v1.1 publish/subscribe and the CHORUS pubsub layer (chorus.pubsub v1)",
              .vendor = "CHORUS", .license = "Apache-2.0", .provides = chorus::gossip::kProvides,
              .requirements = chorus::gossip::kRequires, .config_schema = chorus::gossip::kConfigSchema);
