// The dht plugin's descriptor. The network node that provides chorus.dht v1 over these parts is not
// written yet; until it is, the plugin loads and refuses to start, saying so.
#include <chorus/plugin.hpp>

namespace chorus::dht {
namespace {

constexpr const char *kConfigSchema = R"({"type": "object", "properties": {}, "additionalProperties": true})";

class DhtPlugin final : public chorus::Plugin {
 public:
  DhtPlugin(chorus::Host &, std::string_view) {}
  void start() override {
    throw chorus::Error(CHORUS_E_UNSUPPORTED, "the dht plugin's network node is not built yet");
  }
};

}  // namespace
}  // namespace chorus::dht

CHORUS_PLUGIN(chorus::dht::DhtPlugin, .id = "dht", .version = "0.0.1",
              .description = "Kademlia DHT and role-encrypted storage (not yet usable: the node is not built)",
              .vendor = "CHORUS", .license = "Apache-2.0", .config_schema = chorus::dht::kConfigSchema);
