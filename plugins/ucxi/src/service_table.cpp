#include "service_table.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <utility>

#include "decision.hpp"
#include "http_routes.hpp"

namespace chorus::ucxi {

using json = nlohmann::json;

Metrics define_metrics(chorus::Host &host) {
  Metrics m;
  m.requests = host.counter("chorus_ucxi_requests_total", "UCXI requests by operation and UCXL code", {"op", "code"});
  m.request_seconds = host.histogram("chorus_ucxi_request_seconds", "UCXI request latency by operation", {"op"},
                                     {0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30});
  m.versions_stored = host.counter("chorus_ucxi_versions_stored_total", "Versions this agent stored (puts, deletes, decisions)");
  m.decisions_published = host.counter("chorus_ucxi_decisions_published_total", "Decision records published");
  m.cache_hits = host.counter("chorus_ucxi_cache_hits_total", "Version reads answered from the content cache");
  m.cache_misses = host.counter("chorus_ucxi_cache_misses_total", "Version reads that went to the DHT");
  m.announcements_heard =
      host.counter("chorus_ucxi_announcements_heard_total", "ucxl_put and decision_published messages recorded");
  m.versions_local_only = host.counter(
      "chorus_ucxi_versions_local_only_total",
      "Versions stored while no remote peer took a copy of the version list (readable elsewhere only after the dht re-publishes it)");
  // Every series at 0 from the start, so a scrape shows them before the first event.
  m.versions_stored.add(0);
  m.versions_local_only.add(0);
  m.decisions_published.add(0);
  m.cache_hits.add(0);
  m.cache_misses.add(0);
  m.announcements_heard.add(0);
  return m;
}

std::optional<ucxl::Address> parse_concrete(std::string_view text, const char *op, bool latest_only, std::string *field,
                                            std::string *why) {
  ucxl::ParseError pe;
  auto addr = ucxl::parse(text, &pe);
  if (!addr) {
    *field = pe.field;
    *why = pe.what();
    return std::nullopt;
  }
  if (addr->has_wildcards()) {
    *field = "address";
    *why = std::string("wildcard 'any' not allowed for ") + op;
    return std::nullopt;
  }
  if (latest_only && addr->temporal.type != ucxl::TemporalType::kLatest) {
    *field = "temporal_segment";
    *why = std::string(op) + " needs the temporal segment *^ (a new version follows the latest), not " + addr->temporal.text();
    return std::nullopt;
  }
  return addr;
}

Runtime::Runtime(chorus::Host &host, Settings settings, Metrics metrics, std::shared_ptr<ContentStore> store,
                 Identity self, Publish publish, P2pStatus p2p_status)
    : host_(host),
      settings_(std::move(settings)),
      metrics_(std::move(metrics)),
      store_(std::move(store)),
      self_(std::move(self)),
      publish_(std::move(publish)),
      p2p_status_(std::move(p2p_status)),
      started_ms_(host.now_ms()) {}

Runtime::~Runtime() {
  // The store's destructor waits for completions still running; they use this object's members, so
  // it goes first.
  if (store_) store_->stop();
  store_.reset();
}

void Runtime::stop() { store_->stop(); }

namespace {

// SHHH (docs/shhh.md): JSON media types are redacted as JSON, other text as text. Binary content,
// and text that is not UTF-8 (the service table does not insist), are stored as they are.
void redact_content(const chorus::Host &host, const std::string &content_type, std::vector<uint8_t> &content) {
  if (content.empty() || !host.can_redact() || !is_text_content_type(content_type)) return;
  const std::string_view text(reinterpret_cast<const char *>(content.data()), content.size());
  if (!is_valid_utf8(text)) return;
  std::string media(content_type.substr(0, content_type.find(';')));
  std::transform(media.begin(), media.end(), media.begin(), [](unsigned char ch) { return std::tolower(ch); });
  while (!media.empty() && media.back() == ' ') media.pop_back();
  const bool json = media == "application/json" || media.ends_with("+json");
  std::string redacted = host.redact(chorus::Channel::ucxi, text, json);
  content.assign(redacted.begin(), redacted.end());
}

}  // namespace

void Runtime::put(const ucxl::Address &addr, std::string content_type, std::vector<uint8_t> content,
                  uint32_t timeout_ms, Done done) {
  redact_content(host_, content_type, content);
  store_->put(addr, std::move(content_type), std::move(content), timeout(timeout_ms),
              [this, done = std::move(done)](Outcome o) {
                follow_index_health();
                if (o.status == CHORUS_OK) {
                  metrics_.versions_stored.inc();
                  if (o.meta.value("replicas", uint64_t{1}) == 0) {
                    metrics_.versions_local_only.inc();
                    host_.warn("ucxi: " + o.meta.value("address", std::string()) +
                               " is stored on this agent only: no peer took a copy of its version list "
                               "(the dht re-publishes it; other agents may not read it until then)");
                  }
                  if (settings_.announce_puts && publish_)
                    publish_(std::string(kTypePut), json{{"address", o.meta.value("address", "")},
                                            {"sha256", o.meta.value("sha256", "")},
                                            {"version", o.meta.value("version", 0)}});
                }
                done(std::move(o));
              });
}

void Runtime::get(const ucxl::Address &addr, uint64_t from, uint32_t timeout_ms, Done done) {
  store_->get(addr, from, timeout(timeout_ms), [this, done = std::move(done)](Outcome o) {
    count_cache();
    done(std::move(o));
  });
}

void Runtime::resolve(const ucxl::Address &addr, uint64_t from, uint32_t timeout_ms, Done done) {
  store_->resolve(addr, from, timeout(timeout_ms), std::move(done));
}

void Runtime::publish_decision(const json &record, const ucxl::Address *expected, uint32_t timeout_ms, Done done) {
  std::string field, why;
  auto decision = parse_decision(record, &field, &why);
  if (!decision) {
    Outcome o;
    o.status = CHORUS_E_INVALID_ARG;
    o.field = field.empty() ? "decision" : field;
    o.message = "decision record: " + why;
    return done(std::move(o));
  }
  const ucxl::Address addr = decision_address(*decision);
  if (expected != nullptr && expected->series() != addr.series()) {
    Outcome o;
    o.status = CHORUS_E_INVALID_ARG;
    o.field = "address";
    o.message = "the address is not the decision's, " + addr.to_string();
    return done(std::move(o));
  }
  const std::string text = to_json(*decision).dump();
  std::vector<uint8_t> bytes(text.begin(), text.end());
  redact_content(host_, "application/json", bytes);
  store_->put(addr, "application/json", std::move(bytes), timeout(timeout_ms),
              [this, d = std::move(*decision), done = std::move(done)](Outcome o) {
                follow_index_health();
                if (o.status == CHORUS_OK) {
                  o.meta["id"] = d.id;
                  metrics_.versions_stored.inc();
                  metrics_.decisions_published.inc();
                  if (publish_)
                    publish_(std::string(kDecisionPublishedType),
                             decision_announcement(d, o.meta.value("address", ""), o.meta.value("sha256", "")));
                }
                done(std::move(o));
              });
}

bool Runtime::heard(const std::string &type, const json &data, const std::string &from_peer) {
  if (type != kTypePut && type != kDecisionPublishedType) return false;
  if (!data.is_object() || from_peer.empty()) return false;
  const auto a = data.find("address");
  const auto sha = data.find("sha256");
  if (a == data.end() || !a->is_string() || sha == data.end() || !sha->is_string()) return false;
  auto addr = ucxl::parse(a->get<std::string>());
  if (!addr || addr->has_wildcards()) return false;
  uint64_t version = 0;
  if (auto v = data.find("version"); v != data.end() && v->is_number_unsigned()) version = v->get<uint64_t>();
  else if (addr->temporal.type == ucxl::TemporalType::kSpecific) version = addr->temporal.count;
  store_->note_remote(*addr, from_peer, version, sha->get<std::string>());
  metrics_.announcements_heard.inc();
  follow_index_health();
  return true;
}

// The store counts its cache; the metrics follow its totals.
void Runtime::count_cache() {
  const json stats = store_->stats();
  const json cache = stats.is_object() ? stats.value("cache", json::object()) : json::object();
  const uint64_t hits = cache.value("hits", uint64_t{0}), misses = cache.value("misses", uint64_t{0});
  std::lock_guard lk(cache_mu_);
  if (hits > cache_hits_seen_) metrics_.cache_hits.add(static_cast<double>(hits - cache_hits_seen_));
  if (misses > cache_misses_seen_) metrics_.cache_misses.add(static_cast<double>(misses - cache_misses_seen_));
  cache_hits_seen_ = std::max(cache_hits_seen_, hits);
  cache_misses_seen_ = std::max(cache_misses_seen_, misses);
}

json Runtime::status_json() {
  count_cache();
  json stats = store_->stats();
  if (!stats.is_object()) stats = json::object();
  const uint64_t now = host_.now_ms();
  json out;
  out["server"] = {{"version", kPluginVersion}, {"uptime_s", now > started_ms_ ? (now - started_ms_) / 1000 : 0},
                   {"base_path", std::string(kBasePath) + "/"}};
  out["resolver"] = stats.value("resolver", json::object());
  out["storage"] = stats.value("storage", json::object());
  out["cache"] = stats.value("cache", json::object());
  out["navigator"] = stats.value("navigator", json::object());
  out["p2p"] = p2p_status_ ? p2p_status_() : json{{"peer_id", self_.peer_id}, {"connected_peers", 0}};
  out["pubsub"] = {{"present", static_cast<bool>(publish_)}};
  return out;
}

void Runtime::report_health() {
  const bool ok = store_->index_ok();
  index_ok_reported_.store(ok);
  if (!ok) {
    const json stats = store_->stats();
    const json storage = stats.is_object() ? stats.value("storage", json::object()) : json::object();
    host_.report_health(chorus::Health::degraded, "the local index cannot be written: " +
                                                      storage.value("last_index_error", std::string("unknown error")));
    return;
  }
  char text[64];
  const int n = std::snprintf(text, sizeof text, "%llu series indexed",
                              static_cast<unsigned long long>(store_->series_indexed()));
  host_.report_health(chorus::Health::ok, std::string(text, n > 0 ? static_cast<size_t>(n) : 0));
}

void Runtime::follow_index_health() {
  if (store_->index_ok() != index_ok_reported_.load()) report_health();
}

// ---- the C table ----

namespace {

std::shared_ptr<Runtime> runtime_of(void *self) { return static_cast<RuntimeSource *>(self)->runtime(); }

chorus_status fail(chorus_error *err, chorus_status st, const std::string &message) {
  chorus::set_error(err, st, message);
  return st;
}

chorus_status unavailable(chorus_error *err) { return fail(err, CHORUS_E_UNAVAILABLE, "ucxi: the plugin is not running"); }

chorus_status invalid(chorus_error *err, const std::string &field, const std::string &why) {
  return fail(err, CHORUS_E_INVALID_ARG, "ucxi: " + field + ": " + why);
}

// The C completion as a Done: err is NULL on success; content only for get.
Done c_done(chorus_ucxi_done_fn fn, void *arg) {
  return [fn, arg](Outcome o) {
    if (o.status == CHORUS_OK) {
      const std::string meta = o.meta.dump(-1, ' ', false, json::error_handler_t::replace);
      fn(arg, CHORUS_OK, nullptr, meta.c_str(), meta.size(), o.content.empty() ? nullptr : o.content.data(),
         o.content.size());
      return;
    }
    chorus::ErrorBuffer err;
    std::string message = o.message.empty() ? chorus_status_name(o.status) : o.message;
    if (!o.field.empty()) message = "ucxi: " + o.field + ": " + message;
    chorus::set_error(err.get(), o.status, message);
    fn(arg, o.status, err.get(), nullptr, 0, nullptr, 0);
  };
}

chorus_status c_put(void *self, const char *address, const char *content_type, const uint8_t *content, size_t len,
                    uint32_t timeout_ms, chorus_ucxi_done_fn done, void *arg, chorus_error *err) noexcept {
  return chorus::guard(err, [&]() -> chorus_status {
    if (address == nullptr) return invalid(err, "address", "is NULL");
    if (content == nullptr && len != 0) return invalid(err, "content", "is NULL but len is not 0");
    if (done == nullptr) return invalid(err, "done", "is NULL");
    auto rt = runtime_of(self);
    if (!rt) return unavailable(err);
    std::string field, why;
    auto addr = parse_concrete(address, "put", true, &field, &why);
    if (!addr) return invalid(err, field, why);
    if (len > rt->settings().max_body_bytes)
      return fail(err, CHORUS_E_TOO_LARGE, "ucxi: content: larger than max_body_bytes");
    rt->put(*addr, content_type != nullptr && *content_type != '\0' ? content_type : "application/octet-stream",
            len == 0 ? std::vector<uint8_t>() : std::vector<uint8_t>(content, content + len), timeout_ms,
            c_done(done, arg));
    return CHORUS_OK;
  });
}

chorus_status c_get(void *self, const char *address, uint32_t timeout_ms, chorus_ucxi_done_fn done, void *arg,
                    chorus_error *err) noexcept {
  return chorus::guard(err, [&]() -> chorus_status {
    if (address == nullptr) return invalid(err, "address", "is NULL");
    if (done == nullptr) return invalid(err, "done", "is NULL");
    auto rt = runtime_of(self);
    if (!rt) return unavailable(err);
    std::string field, why;
    auto addr = parse_concrete(address, "get", false, &field, &why);
    if (!addr) return invalid(err, field, why);
    rt->get(*addr, 0, timeout_ms, c_done(done, arg));
    return CHORUS_OK;
  });
}

chorus_status c_publish_decision(void *self, const char *decision_json, uint32_t timeout_ms, chorus_ucxi_done_fn done,
                                 void *arg, chorus_error *err) noexcept {
  return chorus::guard(err, [&]() -> chorus_status {
    if (decision_json == nullptr) return invalid(err, "decision", "is NULL");
    if (done == nullptr) return invalid(err, "done", "is NULL");
    auto rt = runtime_of(self);
    if (!rt) return unavailable(err);
    const std::string_view text(decision_json);
    if (text.size() > rt->settings().max_body_bytes)
      return fail(err, CHORUS_E_TOO_LARGE, "ucxi: decision: larger than max_body_bytes");
    const json record = json::parse(text, nullptr, false);
    if (record.is_discarded()) return invalid(err, "decision", "not valid JSON");
    rt->publish_decision(record, nullptr, timeout_ms, c_done(done, arg));
    return CHORUS_OK;
  });
}

chorus_status c_parse_address(void *, const char *address, chorus_buf *out, chorus_error *err) noexcept {
  return chorus::guard(err, [&]() -> chorus_status {
    if (address == nullptr) return invalid(err, "address", "is NULL");
    if (out == nullptr) return invalid(err, "out", "is NULL");
    ucxl::ParseError pe;
    auto addr = ucxl::parse(address, &pe);
    if (!addr) return fail(err, CHORUS_E_INVALID_ARG, pe.what());
    return chorus::give_buf(addr->to_json().dump(), out);
  });
}

}  // namespace

chorus_ucxi_v1 make_ucxi_table() {
  chorus_ucxi_v1 t{};
  t.struct_size = sizeof t;
  t.put = &c_put;
  t.get = &c_get;
  t.publish_decision = &c_publish_decision;
  t.parse_address = &c_parse_address;
  return t;
}

}  // namespace chorus::ucxi
