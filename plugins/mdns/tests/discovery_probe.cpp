// Test plugin `test.discovery-probe`: a consumer of chorus.discovery v1 that logs every event, so the
// integration tests can check the service from the outside:
//   "probe: found <peer id> addrs=<n> ttl=<s>" / "probe: lost <peer id>"
// On start it also checks that list_peers_json returns a JSON array.
#include <string>

#include <chorus/plugin.hpp>
#include <chorus/services/discovery_v1.h>

namespace {

class DiscoveryProbe final : public chorus::Plugin {
 public:
  DiscoveryProbe(chorus::Host &host, std::string_view) : host_(host) {}

  void start() override {
    ref_ = host_.acquire<chorus_discovery_v1>(CHORUS_DISCOVERY_SERVICE, "^1");
    chorus::check(ref_.table()->subscribe(ref_.self(), &DiscoveryProbe::on_event, this, &sub_), "subscribe");
    chorus_buf buf{};
    chorus::ErrorBuffer err;
    err.check(ref_.table()->list_peers_json(ref_.self(), &buf, err.get()), "list_peers_json");
    const bool array = buf.len > 0 && buf.data[0] == '[';
    buf.release(&buf);
    host_.info(array ? "probe: subscribed" : "probe: list_peers_json is not an array");
  }

  void stop(std::chrono::milliseconds) override {
    if (ref_) ref_.table()->unsubscribe(ref_.self(), sub_);
    ref_.reset();
  }

 private:
  static void on_event(void *arg, const chorus_discovery_event *ev) {
    auto *self = static_cast<DiscoveryProbe *>(arg);
    if (ev->type == CHORUS_DISCOVERY_PEER_FOUND)
      self->host_.info(std::string("probe: found ") + ev->peer_text + " addrs=" + std::to_string(ev->addr_count) +
                       " ttl=" + std::to_string(ev->ttl_s));
    else if (ev->type == CHORUS_DISCOVERY_PEER_LOST)
      self->host_.info(std::string("probe: lost ") + ev->peer_text);
  }

  chorus::Host &host_;
  chorus::ServiceRef<chorus_discovery_v1> ref_;
  uint64_t sub_ = 0;
};

constexpr chorus_require kRequires[] = {chorus::require(CHORUS_DISCOVERY_SERVICE, "^1")};

}  // namespace

CHORUS_PLUGIN(DiscoveryProbe, .id = "test.discovery-probe", .version = "0.1.0",
              .description = "logs chorus.discovery events (mdns integration tests)", .requirements = kRequires);
