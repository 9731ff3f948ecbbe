// The ucxi plugin: UCXL content and the UCXI server (README.md). Versioned content over chorus.dht,
// announced on chorus.pubsub when it runs, provided as chorus.ucxi v1 and under /ucxi/v1/. The
// content store (content.hpp) does the work on the DHT's threads; this file is the descriptor and
// the glue to the host.
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include <chorus/plugin.hpp>
#include <chorus/services/dht_v1.h>
#include <chorus/services/p2p_host_v1.h>
#include <chorus/services/pubsub_v1.h>
#include <chorus/services/ucxi_v1.h>
#include <nlohmann/json.hpp>

#include "content.hpp"
#include "dht_adapter.hpp"
#include "http_routes.hpp"
#include "service_table.hpp"
#include "settings.hpp"
#include "store/index.hpp"

namespace chorus::ucxi {
namespace {

using json = nlohmann::json;
using P2pRef = chorus::ServiceRef<chorus_p2p_host_v1>;
using PubsubRef = chorus::ServiceRef<chorus_pubsub_v1>;

// The agent's network identity: providers in the DHT and announcements are peer ids.
std::string local_peer_id(const P2pRef &p2p) {
  char text[128] = {};
  size_t len = 0;
  chorus::check(p2p.table()->local_peer_id(p2p.self(), nullptr, 0, nullptr, text, sizeof text, &len),
                "ucxi: local_peer_id");
  if (len == 0 || len >= sizeof text) throw chorus::Error(CHORUS_E_INTERNAL, "ucxi: empty local peer id");
  return std::string(text, len);
}

std::string string_member(const json &j, const char *key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
}

class UcxiPlugin final : public chorus::Plugin, public RuntimeSource {
 public:
  UcxiPlugin(chorus::Host &host, std::string_view config_json) : host_(host), table_(make_ucxi_table()) {
    try {
      settings_ = parse_settings(config_json);
    } catch (const std::invalid_argument &e) {
      throw chorus::Error(CHORUS_E_CONFIG, e.what());
    }
    metrics_ = define_metrics(host_);
    try {
      register_routes(host_, *this, metrics_);
    } catch (const chorus::Error &e) {
      if (e.code() != CHORUS_E_UNAVAILABLE && e.code() != CHORUS_E_UNSUPPORTED) throw;  // no HTTP listener
    }
  }

  ~UcxiPlugin() override { stop_runtime(); }

  void start() override {
    auto dht = host_.acquire<chorus_dht_v1>(CHORUS_DHT_SERVICE, "^1");
    if (!dht.has<&chorus_dht_v1::put_value>() || !dht.has<&chorus_dht_v1::get_value>() ||
        !dht.has<&chorus_dht_v1::provide>() || !dht.has<&chorus_dht_v1::find_providers>() ||
        !dht.has<&chorus_dht_v1::store>() || !dht.has<&chorus_dht_v1::retrieve>())
      throw chorus::Error(CHORUS_E_VERSION, "ucxi: the chorus.dht provider lacks the value, provider or content slots");
    auto p2p = std::make_shared<P2pRef>(host_.acquire<chorus_p2p_host_v1>(CHORUS_P2P_HOST_SERVICE, "^1"));
    if (!p2p->has<&chorus_p2p_host_v1::local_peer_id>() || !p2p->has<&chorus_p2p_host_v1::list_peers_json>())
      throw chorus::Error(CHORUS_E_VERSION, "ucxi: the chorus.p2p.host provider lacks local_peer_id or list_peers_json");

    Identity self;
    self.peer_id = local_peer_id(*p2p);
    const json info = json::parse(host_.host_info(), nullptr, false);
    self.agent_id = string_member(info, "agent_id");
    self.role = string_member(info, "role");
    const std::string path = index_dir(settings_, string_member(info, "state_dir")) + "/index.db";
    std::shared_ptr<Index> index;
    try {
      index = Index::open(path);
    } catch (const IndexError &e) {
      throw chorus::Error(CHORUS_E_IO, std::string("ucxi: ") + e.what());
    }
    ContentSettings cs;
    cs.max_content_bytes = settings_.max_body_bytes;
    cs.timeout_ms = settings_.timeout_ms;
    cs.cache_entries = settings_.cache_entries;
    auto store = std::make_shared<ContentStore>(std::make_shared<DhtAdapter>(std::move(dht)), std::move(index), self, cs);

    // pubsub is optional: without it nothing is announced and nothing is heard.
    Runtime::Publish publish;
    auto pubsub = std::make_shared<PubsubRef>(host_.try_acquire<chorus_pubsub_v1>(CHORUS_PUBSUB_SERVICE, "^1"));
    if (*pubsub && pubsub->has<&chorus_pubsub_v1::publish>() && pubsub->has<&chorus_pubsub_v1::subscribe>()) {
      publish = [pubsub, topic = settings_.announce_topic, &host = host_](const std::string &type, const json &data) {
        const std::string text = data.dump(-1, ' ', false, json::error_handler_t::replace);
        chorus::ErrorBuffer err;
        const chorus_status st = pubsub->table()->publish(pubsub->self(), topic.c_str(), type.c_str(), text.data(),
                                                          text.size(), nullptr, 0, nullptr, err.get());
        if (st != CHORUS_OK) host.warn("ucxi: announcing " + type + " on " + topic + " failed: " + std::string(err.text()));
        return st == CHORUS_OK;
      };
    } else if (*pubsub) {
      host_.warn("ucxi: the chorus.pubsub provider lacks publish or subscribe; announcements are off");
    }
    auto p2p_status = [p2p, peer_id = self.peer_id]() {
      size_t connected = 0;
      chorus_buf buf{};
      chorus::ErrorBuffer err;
      if (p2p->table()->list_peers_json(p2p->self(), &buf, err.get()) == CHORUS_OK) {
        const json peers = json::parse(std::string_view(buf.data, buf.len), nullptr, false);
        if (peers.is_array()) connected = peers.size();
        if (buf.release != nullptr) buf.release(&buf);
      }
      return json{{"peer_id", peer_id}, {"connected_peers", connected}};
    };
    auto rt = std::make_shared<Runtime>(host_, settings_, metrics_, std::move(store), self, std::move(publish),
                                        std::move(p2p_status));
    {
      std::lock_guard lk(mu_);
      runtime_ = rt;
    }
    if (*pubsub && pubsub->has<&chorus_pubsub_v1::subscribe>() && pubsub->has<&chorus_pubsub_v1::unsubscribe>()) {
      chorus::ErrorBuffer err;
      uint64_t sub = 0;
      if (pubsub->table()->subscribe(pubsub->self(), settings_.announce_topic.c_str(), &UcxiPlugin::on_message, this,
                                     &sub, err.get()) == CHORUS_OK) {
        subscription_ = sub;
        subscribed_pubsub_ = pubsub;
      } else {
        host_.warn("ucxi: cannot subscribe to " + settings_.announce_topic + ": " + std::string(err.text()));
      }
    }
    rt->report_health();
  }

  void stop(std::chrono::milliseconds) override { stop_runtime(); }

  chorus::ServiceTable service(std::string_view name, uint16_t major) override {
    if (name == CHORUS_UCXI_SERVICE && major == CHORUS_UCXI_V1_MAJOR) return {&table_, static_cast<RuntimeSource *>(this)};
    return Plugin::service(name, major);
  }

  std::shared_ptr<Runtime> runtime() override {
    std::lock_guard lk(mu_);
    return runtime_;
  }

 private:
  // An announcement on the topic (the pubsub plugin's thread): other agents' puts and decisions.
  static void on_message(void *arg, const chorus_pubsub_message *msg) {
    auto *self = static_cast<UcxiPlugin *>(arg);
    if (msg == nullptr || msg->local != 0 || msg->type == nullptr || msg->from_text == nullptr) return;
    const std::string type(msg->type);
    if (type != kTypePut && type != kTypeDecision) return;
    auto rt = self->runtime();
    if (!rt) return;
    const json envelope =
        json::parse(std::string_view(reinterpret_cast<const char *>(msg->data), msg->data_len), nullptr, false);
    if (!envelope.is_object() || !envelope.contains("data")) return;
    if (!rt->heard(type, envelope["data"], msg->from_text))
      self->host_.debug("ucxi: ignored a malformed " + type + " announcement");
  }

  void stop_runtime() {
    // Unsubscribe first: after it returns on_message is not running and will not run again.
    if (subscribed_pubsub_) {
      subscribed_pubsub_->table()->unsubscribe(subscribed_pubsub_->self(), subscription_);
      subscribed_pubsub_.reset();
    }
    std::shared_ptr<Runtime> rt;
    {
      std::lock_guard lk(mu_);
      rt = std::move(runtime_);
    }
    if (rt) rt->stop();
  }

  chorus::Host &host_;
  Settings settings_;
  Metrics metrics_;
  chorus_ucxi_v1 table_;
  std::mutex mu_;
  std::shared_ptr<Runtime> runtime_;
  std::shared_ptr<PubsubRef> subscribed_pubsub_;
  uint64_t subscription_ = 0;
};

constexpr chorus_provide kProvides[] = {chorus::provide(CHORUS_UCXI_SERVICE, CHORUS_UCXI_V1_MAJOR, CHORUS_UCXI_V1_MINOR)};
// pubsub is optional: when it runs, puts and decisions are announced on announce_topic and the
// announcements of other agents are recorded in the local index.
constexpr chorus_require kRequires[] = {chorus::require(CHORUS_DHT_SERVICE, "^1"),
                                        chorus::require(CHORUS_P2P_HOST_SERVICE, "^1"),
                                        chorus::require(CHORUS_PUBSUB_SERVICE, "^1", CHORUS_REQUIRE_OPTIONAL)};

}  // namespace
}  // namespace chorus::ucxi

CHORUS_PLUGIN(chorus::ucxi::UcxiPlugin, .id = "ucxi", .version = "0.1.0",
              .description = "UCXL content and the UCXI server (chorus.ucxi v1)", .vendor = "CHORUS",
              .license = "Apache-2.0", .provides = chorus::ucxi::kProvides, .requirements = chorus::ucxi::kRequires,
              .config_schema = chorus::ucxi::kConfigSchema);
