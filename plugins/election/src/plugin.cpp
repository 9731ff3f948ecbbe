// election: being written (the glue slice replaces this stub).
#include <chorus/plugin.hpp>

namespace chorus::election {
namespace {
class ElectionPlugin final : public chorus::Plugin {
 public:
  ElectionPlugin(chorus::Host &, std::string_view) {}
};
}  // namespace
}  // namespace chorus::election

CHORUS_PLUGIN(chorus::election::ElectionPlugin, .id = "election", .version = "0.1.0",
              .description = "one admin per cluster, fenced by terms", .vendor = "CHORUS",
              .license = "Apache-2.0", .config_schema = R"({"type":"object"})");
