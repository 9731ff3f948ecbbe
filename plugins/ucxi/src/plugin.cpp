// The ucxi plugin: UCXL content and the UCXI server (README.md). Placeholder until slice "server"
// writes the glue: descriptor, config schema, service and routes.
#include <chorus/plugin.hpp>
#include <chorus/services/dht_v1.h>
#include <chorus/services/ucxi_v1.h>

namespace chorus::ucxi {
namespace {

constexpr const char *kConfigSchema = R"({"type": "object", "properties": {}, "additionalProperties": false})";

class UcxiPlugin final : public chorus::Plugin {
 public:
  UcxiPlugin(chorus::Host &, std::string_view) {}
};

constexpr chorus_require kRequires[] = {chorus::require(CHORUS_DHT_SERVICE, "^1")};

}  // namespace
}  // namespace chorus::ucxi

CHORUS_PLUGIN(chorus::ucxi::UcxiPlugin, .id = "ucxi", .version = "0.1.0",
              .description = "UCXL content and the UCXI server (chorus.ucxi v1)", .vendor = "CHORUS",
              .license = "Apache-2.0", .requirements = chorus::ucxi::kRequires,
              .config_schema = chorus::ucxi::kConfigSchema);
