#include "service_table.hpp"

#include <nlohmann/json.hpp>

#include <chorus/plugin.hpp>

namespace chorus::eventlog {
namespace {

std::shared_ptr<EventLog> log_of(void *self) { return static_cast<LogSource *>(self)->log(); }

chorus_status fail(chorus_error *err, chorus_status st, const std::string &message) {
  chorus::set_error(err, st, "eventlog: " + message);
  return st;
}

chorus_status c_append(void *self, const char *type, size_t type_len, const char *data, size_t data_len,
                       uint64_t *out_index, chorus_error *err) noexcept {
  return chorus::guard(err, [&]() -> chorus_status {
    if (type == nullptr || data == nullptr) return fail(err, CHORUS_E_INVALID_ARG, "append: type or data is NULL");
    auto log = log_of(self);
    if (!log) return fail(err, CHORUS_E_UNAVAILABLE, "the plugin is not running");
    const AppendResult r = log->append(std::string_view(type, type_len), std::string_view(data, data_len));
    if (r.status != CHORUS_OK) return fail(err, r.status, r.error);
    if (out_index != nullptr) *out_index = r.index;
    return CHORUS_OK;
  });
}

chorus_status c_append_async(void *self, const char *type, size_t type_len, const char *data, size_t data_len,
                             chorus_eventlog_append_fn fn, void *arg, chorus_error *err) noexcept {
  return chorus::guard(err, [&]() -> chorus_status {
    if (type == nullptr || data == nullptr) return fail(err, CHORUS_E_INVALID_ARG, "append_async: type or data is NULL");
    auto log = log_of(self);
    if (!log) return fail(err, CHORUS_E_UNAVAILABLE, "the plugin is not running");
    EventLog::Completion done;
    if (fn != nullptr)
      done = [fn, arg](const AppendResult &r) {
        chorus_error e{};
        e.struct_size = sizeof e;
        if (r.status != CHORUS_OK) chorus::set_error(&e, r.status, "eventlog: " + r.error);
        fn(arg, r.status, r.index, r.status == CHORUS_OK ? nullptr : &e);
      };
    std::string why;
    const chorus_status st = log->enqueue(std::string_view(type, type_len), std::string_view(data, data_len),
                                          std::move(done), &why);
    return st == CHORUS_OK ? st : fail(err, st, why);
  });
}

chorus_status c_query_json(void *self, uint64_t from, uint64_t to, const char *type, size_t type_len, uint32_t limit,
                           chorus_buf *out, chorus_error *err) noexcept {
  return chorus::guard(err, [&]() -> chorus_status {
    if (out == nullptr) return fail(err, CHORUS_E_INVALID_ARG, "query_json: out is NULL");
    if (from > to) return fail(err, CHORUS_E_INVALID_ARG, "query_json: from is after to");
    const std::string t = type != nullptr ? std::string(type, type_len) : std::string();
    if (!t.empty() && !valid_type(t)) return fail(err, CHORUS_E_INVALID_ARG, "query_json: type must match [a-z0-9_.]{1,64}");
    auto log = log_of(self);
    if (!log) return fail(err, CHORUS_E_UNAVAILABLE, "the plugin is not running");
    const size_t n = limit == 0 ? CHORUS_EVENTLOG_QUERY_DEFAULT : std::min<size_t>(limit, CHORUS_EVENTLOG_QUERY_MAX);
    std::vector<Entry> entries;
    std::string why;
    if (!log->query(from, to, t, n, &entries, &why)) return fail(err, CHORUS_E_IO, why);
    return chorus::give_buf(query_answer(entries), out);
  });
}

chorus_status c_head_json(void *self, chorus_buf *out, chorus_error *err) noexcept {
  return chorus::guard(err, [&]() -> chorus_status {
    if (out == nullptr) return fail(err, CHORUS_E_INVALID_ARG, "head_json: out is NULL");
    auto log = log_of(self);
    if (!log) return fail(err, CHORUS_E_UNAVAILABLE, "the plugin is not running");
    return chorus::give_buf(head_answer(log->head()), out);
  });
}

}  // namespace

chorus_eventlog_v1 make_eventlog_table() {
  chorus_eventlog_v1 t{};
  t.struct_size = sizeof t;
  t.append = c_append;
  t.append_async = c_append_async;
  t.query_json = c_query_json;
  t.head_json = c_head_json;
  return t;
}

std::string query_answer(const std::vector<Entry> &entries) {
  std::string out = "[";
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i) out += ',';
    out += entry_json(entries[i]);
  }
  return out + "]";
}

std::string head_answer(const Head &head) {
  nlohmann::json j;
  j["length"] = head.length;
  j["index"] = head.length == 0 ? nlohmann::json(nullptr) : nlohmann::json(head.length - 1);
  j["hash"] = to_hex(head.hash);
  return j.dump();
}

}  // namespace chorus::eventlog
