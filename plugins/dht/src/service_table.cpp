#include "service_table.hpp"

#include <string>

#include "node_internal.hpp"

namespace chorus::dht {
namespace {

std::shared_ptr<Node> node_of(void *self) { return static_cast<NodeSource *>(self)->node(); }

chorus_status unavailable(chorus_error *err) { return fail(err, CHORUS_E_UNAVAILABLE, "dht: the plugin is not running"); }

chorus_status invalid(chorus_error *err, const std::string &what) { return fail(err, CHORUS_E_INVALID_ARG, "dht: " + what); }

// The C completion as a Done: err is NULL on success, data/len only when there is data.
Done c_done(chorus_dht_done_fn fn, void *arg) {
  return [fn, arg](chorus_status st, const std::string &message, const Bytes &data) {
    if (st == CHORUS_OK) {
      fn(arg, st, nullptr, data.empty() ? nullptr : data.data(), data.size());
      return;
    }
    chorus::ErrorBuffer err;
    chorus::set_error(err.get(), st, message.empty() ? chorus_status_name(st) : message);
    fn(arg, st, err.get(), nullptr, 0);
  };
}

chorus_status c_put_value(void *self, const uint8_t *key, size_t key_len, const uint8_t *value, size_t value_len,
                          uint32_t timeout_ms, chorus_dht_done_fn done, void *arg, chorus_error *err) noexcept {
  return chorus::guard(err, [&]() -> chorus_status {
    if (key == nullptr) return invalid(err, "put_value: key is NULL");
    if (value == nullptr && value_len != 0) return invalid(err, "put_value: value is NULL but value_len is not 0");
    if (done == nullptr) return invalid(err, "put_value: done is NULL");
    auto n = node_of(self);
    if (!n) return unavailable(err);
    return n->put_value(Bytes(key, key + key_len), value_len == 0 ? Bytes() : Bytes(value, value + value_len), timeout_ms,
                        c_done(done, arg), err);
  });
}

chorus_status c_get_value(void *self, const uint8_t *key, size_t key_len, uint32_t timeout_ms, chorus_dht_done_fn done,
                          void *arg, chorus_error *err) noexcept {
  return chorus::guard(err, [&]() -> chorus_status {
    if (key == nullptr) return invalid(err, "get_value: key is NULL");
    if (done == nullptr) return invalid(err, "get_value: done is NULL");
    auto n = node_of(self);
    if (!n) return unavailable(err);
    return n->get_value(Bytes(key, key + key_len), timeout_ms, c_done(done, arg), err);
  });
}

chorus_status c_provide(void *self, const uint8_t *key, size_t key_len, uint32_t timeout_ms, chorus_dht_done_fn done,
                        void *arg, chorus_error *err) noexcept {
  return chorus::guard(err, [&]() -> chorus_status {
    if (key == nullptr) return invalid(err, "provide: key is NULL");
    if (done == nullptr) return invalid(err, "provide: done is NULL");
    auto n = node_of(self);
    if (!n) return unavailable(err);
    return n->provide(Bytes(key, key + key_len), timeout_ms, c_done(done, arg), err);
  });
}

chorus_status c_stop_providing(void *self, const uint8_t *key, size_t key_len) noexcept {
  return chorus::guard(nullptr, [&]() -> chorus_status {
    if (key == nullptr) return CHORUS_E_INVALID_ARG;
    auto n = node_of(self);
    return n ? n->stop_providing(Bytes(key, key + key_len)) : CHORUS_E_UNAVAILABLE;
  });
}

chorus_status c_find_providers(void *self, const uint8_t *key, size_t key_len, uint32_t max_providers, uint32_t timeout_ms,
                               chorus_dht_done_fn done, void *arg, chorus_error *err) noexcept {
  return chorus::guard(err, [&]() -> chorus_status {
    if (key == nullptr) return invalid(err, "find_providers: key is NULL");
    if (done == nullptr) return invalid(err, "find_providers: done is NULL");
    auto n = node_of(self);
    if (!n) return unavailable(err);
    return n->find_providers(Bytes(key, key + key_len), max_providers, timeout_ms, c_done(done, arg), err);
  });
}

chorus_status c_find_peer(void *self, const uint8_t *peer, size_t peer_len, uint32_t timeout_ms, chorus_dht_done_fn done,
                          void *arg, chorus_error *err) noexcept {
  return chorus::guard(err, [&]() -> chorus_status {
    if (peer == nullptr) return invalid(err, "find_peer: peer is NULL");
    if (done == nullptr) return invalid(err, "find_peer: done is NULL");
    std::string why;
    auto id = PeerId::from_bytes(BytesView(peer, peer_len), &why);
    if (!id) return invalid(err, "find_peer: not a peer id: " + why);
    auto n = node_of(self);
    if (!n) return unavailable(err);
    return n->find_peer(std::move(*id), timeout_ms, c_done(done, arg), err);
  });
}

// Role-encrypted content needs the age and keyring parts, which this node does not wire up yet.
chorus_status c_store(void *, const char *key, const char *role, const uint8_t *content, size_t len, uint32_t,
                      chorus_dht_done_fn done, void *, chorus_error *err) noexcept {
  if (key == nullptr || role == nullptr || (content == nullptr && len != 0) || done == nullptr)
    return invalid(err, "store: NULL argument");
  return fail(err, CHORUS_E_UNSUPPORTED, "dht: role-encrypted store is not available in this build yet");
}

chorus_status c_retrieve(void *, const char *key, uint32_t, chorus_dht_done_fn done, void *, chorus_error *err) noexcept {
  if (key == nullptr || done == nullptr) return invalid(err, "retrieve: NULL argument");
  return fail(err, CHORUS_E_UNSUPPORTED, "dht: role-encrypted retrieve is not available in this build yet");
}

chorus_status c_routing_json(void *self, chorus_buf *out, chorus_error *err) noexcept {
  return chorus::guard(err, [&]() -> chorus_status {
    if (out == nullptr) return invalid(err, "routing_json: out is NULL");
    auto n = node_of(self);
    if (!n) return unavailable(err);
    std::string text;
    if (auto st = n->routing_json(&text, err); st != CHORUS_OK) return st;
    return chorus::give_buf(std::move(text), out);
  });
}

}  // namespace

chorus_dht_v1 make_dht_table() {
  chorus_dht_v1 t{};
  t.struct_size = sizeof t;
  t.put_value = &c_put_value;
  t.get_value = &c_get_value;
  t.provide = &c_provide;
  t.stop_providing = &c_stop_providing;
  t.find_providers = &c_find_providers;
  t.find_peer = &c_find_peer;
  t.store = &c_store;
  t.retrieve = &c_retrieve;
  t.routing_json = &c_routing_json;
  return t;
}

}  // namespace chorus::dht
