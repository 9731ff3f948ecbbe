#include "service_table.hpp"

#include <nlohmann/json.hpp>

namespace chorus::election {
namespace {

std::shared_ptr<Node> running(void *self) {
  auto n = static_cast<NodeSource *>(self)->node();
  if (!n) throw chorus::Error(CHORUS_E_UNAVAILABLE, "the election plugin is not running");
  return n;
}

chorus_status c_is_admin(void *self, int32_t *out, chorus_error *err) noexcept {
  return chorus::guard(err, [&] {
    if (out == nullptr) throw chorus::Error(CHORUS_E_INVALID_ARG, "out_is_admin is NULL");
    *out = 0;  // "not admin" on every error path
    *out = running(self)->admin_view().is_self ? 1 : 0;
  });
}

chorus_status c_get_admin_json(void *self, chorus_buf *out, chorus_error *err) noexcept {
  return chorus::guard(err, [&]() -> chorus_status {
    if (out == nullptr) throw chorus::Error(CHORUS_E_INVALID_ARG, "out is NULL");
    const chorus_status st = chorus::give_buf(admin_json(running(self)->admin_view()), out);
    if (st != CHORUS_OK) chorus::set_error(err, st, "get_admin_json: out of memory");
    return st;
  });
}

chorus_status c_watch_admin(void *self, chorus_election_watch_fn fn, void *arg, void (*dtor)(void *),
                            uint64_t *out_watch, chorus_error *err) noexcept {
  return chorus::guard(err, [&] {
    if (fn == nullptr || out_watch == nullptr) throw chorus::Error(CHORUS_E_INVALID_ARG, "fn and out_watch are required");
    *out_watch = running(self)->watch(fn, arg, dtor);
  });
}

chorus_status c_unwatch_admin(void *self, uint64_t watch, chorus_error *err) noexcept {
  return chorus::guard(err, [&] {
    if (!running(self)->unwatch(watch)) throw chorus::Error(CHORUS_E_NOT_FOUND, "no such watch");
  });
}

}  // namespace

std::string admin_json(const AdminView &v) {
  return nlohmann::json{{"admin_id", v.admin_id},
                        {"is_self", v.is_self},
                        {"term", v.term},
                        {"since", rfc3339(v.since_unix_ms)},
                        {"since_unix_ms", v.since_unix_ms},
                        {"cluster_size", v.cluster_size}}
      .dump();
}

chorus_election_v1 make_election_table() {
  chorus_election_v1 t{};
  t.struct_size = sizeof t;
  t.is_admin = &c_is_admin;
  t.get_admin_json = &c_get_admin_json;
  t.watch_admin = &c_watch_admin;
  t.unwatch_admin = &c_unwatch_admin;
  return t;
}

}  // namespace chorus::election
