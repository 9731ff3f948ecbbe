#include "service_table.hpp"

#include <cstring>

#include <nlohmann/json.hpp>

namespace chorus::gossip {
namespace {

// Message ids are at most 64 bytes (pubsub_v1.h: id_cap >= 64).
constexpr size_t kIdCap = 64;

std::shared_ptr<Node> node_of(void *self) { return static_cast<NodeSource *>(self)->node(); }

chorus_status unavailable(chorus_error *err) {
  chorus::set_error(err, CHORUS_E_UNAVAILABLE, "gossip: the plugin is not running");
  return CHORUS_E_UNAVAILABLE;
}

chorus_status invalid(chorus_error *err, const char *what) {
  chorus::set_error(err, CHORUS_E_INVALID_ARG, std::string("gossip: ") + what);
  return CHORUS_E_INVALID_ARG;
}

// Checks the id buffer before anything is published, and copies the id out afterwards.
chorus_status check_id_out(uint8_t *id_out, size_t id_cap, chorus_error *err) {
  if (id_out != nullptr && id_cap < kIdCap) return invalid(err, "id_cap must be at least 64");
  return CHORUS_OK;
}
void copy_id(const Bytes &id, uint8_t *id_out, size_t *id_len) {
  if (id_out != nullptr) std::memcpy(id_out, id.data(), std::min(id.size(), kIdCap));
  if (id_len != nullptr) *id_len = std::min(id.size(), kIdCap);
}

chorus_status c_subscribe(void *self, const char *topic, chorus_pubsub_message_fn fn, void *arg, uint64_t *out_sub,
                          chorus_error *err) noexcept {
  return chorus::guard(err, [&]() -> chorus_status {
    if (topic == nullptr) return invalid(err, "subscribe: topic is NULL");
    if (fn == nullptr) return invalid(err, "subscribe: fn is NULL");
    if (out_sub == nullptr) return invalid(err, "subscribe: out_sub is NULL");
    auto n = node_of(self);
    if (!n) return unavailable(err);
    return n->subscribe(topic, [fn, arg](const chorus_pubsub_message &m) { fn(arg, &m); }, out_sub, err);
  });
}

chorus_status c_unsubscribe(void *self, uint64_t sub) noexcept {
  return chorus::guard(nullptr, [&]() -> chorus_status {
    auto n = node_of(self);
    return n ? n->unsubscribe(sub) : CHORUS_E_NOT_FOUND;  // stopped: every subscription has ended
  });
}

chorus_status c_join(void *self, const char *topic, chorus_error *err) noexcept {
  return chorus::guard(err, [&]() -> chorus_status {
    if (topic == nullptr) return invalid(err, "join: topic is NULL");
    auto n = node_of(self);
    return n ? n->join(topic, err) : unavailable(err);
  });
}

chorus_status c_leave(void *self, const char *topic, chorus_error *err) noexcept {
  return chorus::guard(err, [&]() -> chorus_status {
    if (topic == nullptr) return invalid(err, "leave: topic is NULL");
    auto n = node_of(self);
    return n ? n->leave(topic, err) : unavailable(err);
  });
}

chorus_status c_publish(void *self, const char *topic, const char *type, const char *data_json, size_t data_len,
                        uint8_t *id_out, size_t id_cap, size_t *id_len, chorus_error *err) noexcept {
  return chorus::guard(err, [&]() -> chorus_status {
    if (topic == nullptr) return invalid(err, "publish: topic is NULL");
    if (type == nullptr) return invalid(err, "publish: type is NULL");
    if (data_json == nullptr && data_len != 0) return invalid(err, "publish: data_json is NULL but data_len is not 0");
    if (auto st = check_id_out(id_out, id_cap, err); st != CHORUS_OK) return st;
    nlohmann::json data = nlohmann::json::object();
    if (data_len != 0) {
      data = nlohmann::json::parse(std::string_view(data_json, data_len), nullptr, false);
      if (data.is_discarded()) return invalid(err, "publish: data_json is not valid JSON");
    }
    auto n = node_of(self);
    if (!n) return unavailable(err);
    Bytes id;
    const chorus_status st = n->publish_envelope(topic, type, std::move(data), 0, &id, err);
    if (st == CHORUS_OK) copy_id(id, id_out, id_len);
    return st;
  });
}

chorus_status c_publish_raw(void *self, const char *topic, const uint8_t *data, size_t len, uint8_t *id_out,
                            size_t id_cap, size_t *id_len, chorus_error *err) noexcept {
  return chorus::guard(err, [&]() -> chorus_status {
    if (topic == nullptr) return invalid(err, "publish_raw: topic is NULL");
    if (data == nullptr && len != 0) return invalid(err, "publish_raw: data is NULL but len is not 0");
    if (auto st = check_id_out(id_out, id_cap, err); st != CHORUS_OK) return st;
    auto n = node_of(self);
    if (!n) return unavailable(err);
    Bytes id;
    const chorus_status st = n->publish_raw(topic, Bytes(data, data + len), &id, err);
    if (st == CHORUS_OK) copy_id(id, id_out, id_len);
    return st;
  });
}

chorus_status c_add_validator(void *self, const char *topic, chorus_pubsub_validator_fn fn, void *arg, uint64_t *out_id,
                              chorus_error *err) noexcept {
  return chorus::guard(err, [&]() -> chorus_status {
    if (topic == nullptr) return invalid(err, "add_validator: topic is NULL");
    if (fn == nullptr) return invalid(err, "add_validator: fn is NULL");
    if (out_id == nullptr) return invalid(err, "add_validator: out_id is NULL");
    auto n = node_of(self);
    if (!n) return unavailable(err);
    return n->add_validator(topic, [fn, arg](const chorus_pubsub_message &m) { return fn(arg, &m); }, out_id, err);
  });
}

chorus_status c_remove_validator(void *self, uint64_t id) noexcept {
  return chorus::guard(nullptr, [&]() -> chorus_status {
    auto n = node_of(self);
    return n ? n->remove_validator(id) : CHORUS_E_NOT_FOUND;
  });
}

chorus_status c_topics_json(void *self, chorus_buf *out, chorus_error *err) noexcept {
  return chorus::guard(err, [&]() -> chorus_status {
    if (out == nullptr) return invalid(err, "topics_json: out is NULL");
    auto n = node_of(self);
    if (!n) return unavailable(err);
    std::string text;
    if (auto st = n->topics_json(&text, err); st != CHORUS_OK) return st;
    return chorus::give_buf(std::move(text), out);
  });
}

chorus_status c_peers_json(void *self, chorus_buf *out, chorus_error *err) noexcept {
  return chorus::guard(err, [&]() -> chorus_status {
    if (out == nullptr) return invalid(err, "peers_json: out is NULL");
    auto n = node_of(self);
    if (!n) return unavailable(err);
    std::string text;
    if (auto st = n->peers_json(&text, err); st != CHORUS_OK) return st;
    return chorus::give_buf(std::move(text), out);
  });
}

}  // namespace

chorus_pubsub_v1 make_pubsub_table() {
  chorus_pubsub_v1 t{};
  t.struct_size = sizeof t;
  t.subscribe = &c_subscribe;
  t.unsubscribe = &c_unsubscribe;
  t.join = &c_join;
  t.leave = &c_leave;
  t.publish = &c_publish;
  t.publish_raw = &c_publish_raw;
  t.add_validator = &c_add_validator;
  t.remove_validator = &c_remove_validator;
  t.topics_json = &c_topics_json;
  t.peers_json = &c_peers_json;
  return t;
}

}  // namespace chorus::gossip
