#include "http_routes.hpp"

#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <chorus/http_query.hpp>
#include <chorus/time_text.hpp>
#include <nlohmann/json.hpp>
#include <sodium.h>

#include "envelope.hpp"

namespace chorus::ucxi {

using json = nlohmann::json;

namespace {

// One request in flight: what its answer and its metrics need, shared by the completions.
struct Call {
  std::string op;
  std::string path;  // the request path, for the error envelope
  Stamp stamp = Stamp::now();
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  Metrics metrics;
  chorus::HttpExchange ex;

  void send(const Reply &r, Code code) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    // The host refuses an empty content type (the exchange would stay unanswered), so the 204 of
    // delete carries one too, with no body.
    ex.respond(r.http_status, "application/json", r.body, {{"X-Request-Id", r.request_id}});
    metrics.requests.inc(op, code_text(code));
    metrics.request_seconds.observe(op, seconds);
  }
  void ok(Code code, json data) { send(success_reply(code, std::move(data), stamp), code); }
  void fail(ErrorBody e) {
    const Code code = e.code;
    if (e.path.empty()) e.path = path;
    send(error_reply(e, stamp), code);
  }
  // An error the server found itself (no chorus status behind it).
  void fail(Code code, std::string message, json details = json::object()) {
    ErrorBody e;
    e.code = code;
    e.message = std::move(message);
    e.details = std::move(details);
    fail(std::move(e));
  }
  // A failed operation: the code from its status, details.field for address errors as the envelope
  // wants them.
  void fail(const Outcome &o, bool discover = false, const std::string &raw_address = {}) {
    StatusContext ctx;
    ctx.field = o.field;
    ctx.discover = discover;
    ErrorBody e = error_from_status(o.status, o.message, ctx, path);
    if (o.status == CHORUS_E_INVALID_ARG && e.code == Code::kInvalidAddress)
      e.details = address_error_details(o.field, raw_address, o.message);
    fail(std::move(e));
  }
};
using SharedCall = std::shared_ptr<Call>;

// Answers a wrong method; returns whether the method was wrong.
bool wrong_method(Call &c, std::string_view method, std::string_view allowed) {
  if (method == allowed) return false;
  c.fail(Code::kMethodNotAllowed, "method " + std::string(method) + " not allowed on " + c.path + " (use " +
                                      std::string(allowed) + ")",
         json{{"method", method}, {"allowed", json::array({allowed})}});
  return true;
}

// The raw `address` query parameter; answers BAD_REQUEST when it is missing or empty.
std::optional<std::string> address_param(Call &c, std::string_view query) {
  auto text = chorus::query_param(query, "address");
  if (!text || text->empty()) {
    c.fail(Code::kBadRequest, "the query needs address=<ucxl address> (URL-encoded)", json{{"field", "address"}});
    return std::nullopt;
  }
  return text;
}

// A concrete address for the op (no wildcards; *^ only when latest_only); answers INVALID_ADDRESS.
std::optional<ucxl::Address> concrete_param(Call &c, std::string_view query, bool latest_only) {
  auto text = address_param(c, query);
  if (!text) return std::nullopt;
  ucxl::ParseError pe;
  auto addr = ucxl::parse(*text, &pe);
  if (!addr) {
    c.fail(address_error(pe, c.path));
    return std::nullopt;
  }
  std::string field, why;
  if (!parse_concrete(*text, c.op.c_str(), latest_only, &field, &why)) {
    c.fail(Code::kInvalidAddress, why, address_error_details(field, *text, why));
    return std::nullopt;
  }
  return addr;
}

// Any address, wildcards allowed (discover, query).
std::optional<ucxl::Address> pattern_param(Call &c, std::string_view query) {
  auto text = address_param(c, query);
  if (!text) return std::nullopt;
  ucxl::ParseError pe;
  auto addr = ucxl::parse(*text, &pe);
  if (!addr) c.fail(address_error(pe, c.path));
  return addr;
}

// A decimal parameter in [min, max]; absent -> fallback. Answers BAD_REQUEST when malformed.
std::optional<uint64_t> number_param(Call &c, std::string_view query, std::string_view name, uint64_t fallback,
                                     uint64_t min, uint64_t max) {
  auto text = chorus::query_param(query, name);
  if (!text) return fallback;
  uint64_t v = 0;
  bool ok = !text->empty() && text->size() <= 19;
  for (char ch : *text) ok = ok && ch >= '0' && ch <= '9';
  if (ok) v = std::strtoull(text->c_str(), nullptr, 10);
  if (!ok || v < min || v > max) {
    c.fail(Code::kBadRequest,
           std::string(name) + " must be a whole number from " + std::to_string(min) + " to " + std::to_string(max),
           json{{"field", name}, {"provided", *text}});
    return std::nullopt;
  }
  return v;
}

std::string base64(const std::vector<uint8_t> &bytes) {
  std::string out(sodium_base64_encoded_len(bytes.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), bytes.data(), bytes.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(out.size() - 1);  // the terminating NUL
  return out;
}

// The store's "created" (unix ms) as RFC 3339; text is kept as it is.
void created_as_text(json &meta) {
  auto it = meta.find("created");
  if (it != meta.end() && it->is_number_unsigned()) *it = chorus::rfc3339_utc_ms(static_cast<int64_t>(it->get<uint64_t>()));
}

json meta_of(Outcome &o) {
  json data = std::move(o.meta);
  created_as_text(data);
  return data;
}

// The resolution's members the HTTP data carries (the store's meta has a few more for the service).
json resolution_data(const json &meta, bool with_deleted) {
  json data = json::object();
  for (const char *key : {"address", "version", "versions", "sha256", "size", "content_type", "role", "author", "created"})
    if (meta.contains(key)) data[key] = meta[key];
  if (with_deleted) data["deleted"] = meta.value("deleted", false);
  return data;
}

// get's data: the resolution, and the content as text when its type is text and it is UTF-8.
json get_data(Outcome &o) {
  json data = resolution_data(meta_of(o), false);
  const std::string ct = data.value("content_type", "");
  const std::string_view bytes(reinterpret_cast<const char *>(o.content.data()), o.content.size());
  if (is_text_content_type(ct) && is_valid_utf8(bytes)) data["content"] = std::string(bytes);
  else data["content_base64"] = base64(o.content);
  return data;
}

// The store's completion as an answer: success with `code` (data shaped by `shape`) or the error.
template <class Shape>
Done answer(SharedCall c, Code code, std::string raw_address, Shape shape, bool discover = false) {
  return [c = std::move(c), code, raw = std::move(raw_address), shape = std::move(shape), discover](Outcome o) {
    if (o.status != CHORUS_OK) return c->fail(o, discover, raw);
    c->ok(code, shape(o));
  };
}

// The media type of a Content-Type value: lowercased, parameters and spaces dropped.
std::string media_type(std::string_view content_type) {
  std::string t(content_type.substr(0, content_type.find(';')));
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.pop_back();
  size_t start = 0;
  while (start < t.size() && (t[start] == ' ' || t[start] == '\t')) ++start;
  t.erase(0, start);
  for (char &ch : t) ch = static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
  return t;
}

using Handler = void (*)(const SharedCall &, const std::shared_ptr<Runtime> &, const chorus::HttpRequest &);

void op_get(const SharedCall &c, const std::shared_ptr<Runtime> &rt, const chorus::HttpRequest &req) {
  auto addr = concrete_param(*c, req.query(), false);
  if (!addr) return;
  auto from = number_param(*c, req.query(), "from", 0, 0, UINT64_C(1000000000));
  if (!from) return;
  rt->get(*addr, *from, 0, answer(c, Code::kSuccess, addr->raw, [](Outcome &o) { return get_data(o); }));
}

void op_navigate(const SharedCall &c, const std::shared_ptr<Runtime> &rt, const chorus::HttpRequest &req) {
  auto addr = concrete_param(*c, req.query(), false);
  if (!addr) return;
  auto from = number_param(*c, req.query(), "from", 0, 0, UINT64_C(1000000000));
  if (!from) return;
  // A tombstone resolves too (navigating history passes over deletions): "deleted" says so.
  rt->resolve(*addr, *from, 0,
              answer(c, Code::kSuccess, addr->raw, [](Outcome &o) { return resolution_data(meta_of(o), true); }));
}

void op_put(const SharedCall &c, const std::shared_ptr<Runtime> &rt, const chorus::HttpRequest &req) {
  auto addr = concrete_param(*c, req.query(), true);
  if (!addr) return;
  const std::string_view body = req.body();
  if (body.size() > rt->settings().max_body_bytes)
    return c->fail(Code::kPayloadTooLarge,
                   "the body has " + std::to_string(body.size()) + " bytes, more than max_body_bytes (" +
                       std::to_string(rt->settings().max_body_bytes) + ")",
                   json{{"field", "content"}, {"size", body.size()}, {"limit", rt->settings().max_body_bytes}});
  std::string ct(req.header("Content-Type"));
  if (media_type(ct).empty()) ct = "application/octet-stream";
  if (is_text_content_type(ct) && !is_valid_utf8(body))
    return c->fail(Code::kInvalidPayload, "the body is not valid UTF-8, which its content type " + media_type(ct) + " requires",
                   json{{"field", "content"}, {"content_type", media_type(ct)}});
  rt->put(*addr, ct, std::vector<uint8_t>(body.begin(), body.end()), 0,
          answer(c, Code::kCreated, addr->raw, [](Outcome &o) {
            json m = meta_of(o);
            json out{{"address", m.value("address", "")}, {"version", m.value("version", 0)},
                     {"sha256", m.value("sha256", "")}, {"size", m.value("size", 0)}, {"created", m.value("created", "")}};
            // The peers that took a copy of the version list (0: only this agent has it for now).
            if (m.contains("replicas")) out["replicas"] = m["replicas"];
            return out;
          }));
}

void op_post(const SharedCall &c, const std::shared_ptr<Runtime> &rt, const chorus::HttpRequest &req) {
  std::optional<ucxl::Address> expected;
  if (auto given = chorus::query_param(req.query(), "address"); given && !given->empty()) {
    expected = concrete_param(*c, req.query(), false);
    if (!expected) return;
  }
  const std::string_view body = req.body();
  if (body.size() > rt->settings().max_body_bytes)
    return c->fail(Code::kPayloadTooLarge,
                   "the body has " + std::to_string(body.size()) + " bytes, more than max_body_bytes (" +
                       std::to_string(rt->settings().max_body_bytes) + ")",
                   json{{"field", "decision"}, {"size", body.size()}, {"limit", rt->settings().max_body_bytes}});
  const std::string mt = media_type(req.header("Content-Type"));
  if (!mt.empty() && mt != "application/json" && !(mt.size() > 5 && mt.ends_with("+json")))
    return c->fail(Code::kUnsupportedMediaType, "a decision record is JSON (Content-Type: application/json), not " + mt,
                   json{{"field", "content_type"}, {"content_type", mt}});
  if (!is_valid_utf8(body))
    return c->fail(Code::kInvalidPayload, "the body is not valid UTF-8", json{{"field", "decision"}});
  const json record = json::parse(body, nullptr, false);
  if (record.is_discarded())
    return c->fail(Code::kInvalidPayload, "the body is not a JSON decision record", json{{"field", "decision"}});
  const std::string raw = expected ? expected->raw : std::string();
  rt->publish_decision(record, expected ? &*expected : nullptr, 0,
                       [c, raw](Outcome o) {
                         if (o.status != CHORUS_OK) return c->fail(o, false, raw);
                         json m = meta_of(o);
                         c->ok(Code::kCreated, json{{"address", m.value("address", "")}, {"version", m.value("version", 0)},
                                                    {"sha256", m.value("sha256", "")}, {"size", m.value("size", 0)},
                                                    {"created", m.value("created", "")}, {"id", m.value("id", "")}});
                       });
}

void op_delete(const SharedCall &c, const std::shared_ptr<Runtime> &rt, const chorus::HttpRequest &req) {
  auto addr = concrete_param(*c, req.query(), true);
  if (!addr) return;
  rt->store().remove(*addr, rt->timeout(0), [c, raw = addr->raw](Outcome o) {
    if (o.status != CHORUS_OK) return c->fail(o, false, raw);
    c->metrics.versions_stored.inc();
    c->ok(Code::kNoContent, json::object());
  });
}

void op_announce(const SharedCall &c, const std::shared_ptr<Runtime> &rt, const chorus::HttpRequest &req) {
  auto addr = concrete_param(*c, req.query(), false);
  if (!addr) return;
  rt->store().announce(*addr, rt->timeout(0), answer(c, Code::kSuccess, addr->raw, [](Outcome &o) { return meta_of(o); }));
}

void op_discover(const SharedCall &c, const std::shared_ptr<Runtime> &rt, const chorus::HttpRequest &req) {
  auto addr = pattern_param(*c, req.query());
  if (!addr) return;
  rt->store().discover(*addr, rt->timeout(0), [c, raw = addr->raw](Outcome o) {
    if (o.status != CHORUS_OK) return c->fail(o, true, raw);
    json m = meta_of(o);
    const json providers = m.value("providers", json::array());
    if (!providers.is_array() || providers.empty())
      return c->fail(Code::kResolutionFailed, "no agent provides " + m.value("address", raw),
                     json{{"field", "address"}, {"provided_address", raw}});
    json data{{"address", m.value("address", raw)}, {"providers", providers}};
    if (m.contains("series")) data["series"] = m["series"];  // a pattern: which series each provider has
    c->ok(Code::kSuccess, std::move(data));
  });
}

void op_query(const SharedCall &c, const std::shared_ptr<Runtime> &rt, const chorus::HttpRequest &req) {
  auto pattern = pattern_param(*c, req.query());
  if (!pattern) return;
  auto limit = number_param(*c, req.query(), "limit", rt->settings().default_query_limit, 1, kMaxQueryLimit);
  if (!limit) return;
  Outcome o = rt->store().query(*pattern, static_cast<size_t>(*limit));
  if (o.status != CHORUS_OK) return c->fail(o, false, pattern->raw);
  json matches = o.meta.value("matches", json::array());
  for (auto &m : matches)
    if (m.is_object()) {
      auto it = m.find("updated");
      if (it != m.end() && it->is_number_unsigned())
        *it = chorus::rfc3339_utc_ms(static_cast<int64_t>(it->get<uint64_t>()));
    }
  c->ok(Code::kSuccess, json{{"pattern", pattern->to_string()}, {"matches", std::move(matches)}});
}

void op_status(const SharedCall &c, const std::shared_ptr<Runtime> &rt, const chorus::HttpRequest &) {
  rt->report_health();
  c->ok(Code::kSuccess, rt->status_json());
}

struct Op {
  const char *name;
  const char *method;
  Handler handler;
};

constexpr Op kOps[] = {
    {"get", "GET", &op_get},           {"put", "PUT", &op_put},           {"post", "POST", &op_post},
    {"delete", "DELETE", &op_delete},  {"announce", "POST", &op_announce}, {"discover", "GET", &op_discover},
    {"navigate", "GET", &op_navigate}, {"status", "GET", &op_status},     {"query", "GET", &op_query},
};

}  // namespace

bool is_text_content_type(std::string_view content_type) {
  const std::string t = media_type(content_type);
  return t.starts_with("text/") || t == "application/json" || t == "application/yaml" || t == "application/xml" ||
         (t.find('/') != std::string::npos && t.ends_with("+json"));
}

bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      ++i;
      continue;
    }
    size_t n;
    uint32_t cp;
    if (b >= 0xC2 && b <= 0xDF) n = 1, cp = b & 0x1Fu;
    else if (b >= 0xE0 && b <= 0xEF) n = 2, cp = b & 0x0Fu;
    else if (b >= 0xF0 && b <= 0xF4) n = 3, cp = b & 0x07u;
    else return false;  // continuation byte, overlong lead (C0, C1) or above F4
    if (s.size() - i <= n) return false;
    for (size_t k = 1; k <= n; ++k) {
      const auto cb = static_cast<unsigned char>(s[i + k]);
      if ((cb & 0xC0u) != 0x80u) return false;
      cp = (cp << 6) | (cb & 0x3Fu);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n + 1;
  }
  return true;
}

void register_routes(chorus::Host &host, RuntimeSource &source, const Metrics &metrics) {
  RuntimeSource *src = &source;
  for (const Op &op : kOps) {
    const std::string path = std::string(kBasePath) + "/" + op.name;
    host.route("*", path, [src, op, path, metrics](const chorus::HttpRequest &req, chorus::HttpExchange ex) {
      auto c = std::make_shared<Call>();
      c->op = op.name;
      c->path = path;
      c->metrics = metrics;
      c->ex = std::move(ex);
      if (wrong_method(*c, req.method(), op.method)) return;
      auto rt = src->runtime();
      if (!rt) return c->fail(Code::kServiceUnavailable, "the ucxi plugin is not running");
      op.handler(c, rt, req);
    });
  }
}

}  // namespace chorus::ucxi
