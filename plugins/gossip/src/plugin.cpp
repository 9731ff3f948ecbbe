// gossip: the plugin's descriptor and its glue to the host (placeholder until node.cpp lands).
#include <chorus/plugin.hpp>
#include <chorus/services/p2p_host_v1.h>
#include <chorus/services/pubsub_v1.h>

namespace chorus::gossip {
namespace {

constexpr const char *kConfigSchema = R"({"type": "object", "properties": {}, "additionalProperties": false})";

class GossipPlugin final : public chorus::Plugin {
 public:
  GossipPlugin(chorus::Host &host, std::string_view) : host_(host) {}
  void start() override { host_.report_health(chorus::Health::ok); }

 private:
  chorus::Host &host_;
};

constexpr chorus_require kRequires[] = {chorus::require(CHORUS_P2P_HOST_SERVICE, "^1")};

}  // namespace
}  // namespace chorus::gossip

CHORUS_PLUGIN(chorus::gossip::GossipPlugin, .id = "gossip", .version = "0.1.0",
              .description = "GossipSub v1.1 publish/subscribe and the CHORUS pubsub layer (chorus.pubsub v1)",
              .vendor = "CHORUS", .license = "Apache-2.0", .requirements = chorus::gossip::kRequires,
              .config_schema = chorus::gossip::kConfigSchema);
