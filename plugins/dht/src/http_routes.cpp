#include "http_routes.hpp"

#include <chrono>
#include <memory>

#include <nlohmann/json.hpp>

#include "wire/base32.hpp"
#include "wire/base58.hpp"
#include "wire/varint.hpp"

namespace chorus::dht {

using json = nlohmann::json;

namespace {

std::string dump(const json &j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string error_body(chorus_status st, std::string_view message) {
  return dump(json{{"error", {{"code", chorus_status_name(st)}, {"message", message}}}});
}

void respond_error(chorus::HttpExchange &ex, chorus_status st, std::string_view message) {
  ex.respond(http_status(st), "application/json", error_body(st, message));
}

// The exchange shared by a Done (std::function needs a copyable callable).
using SharedExchange = std::shared_ptr<chorus::HttpExchange>;

SharedExchange share(chorus::HttpExchange ex) { return std::make_shared<chorus::HttpExchange>(std::move(ex)); }

// The `key` query parameter, answered with 400 when missing or empty.
std::optional<std::string> key_param(const chorus::HttpRequest &req, chorus::HttpExchange &ex) {
  auto key = query_param(req.query(), "key");
  if (!key || key->empty()) {
    respond_error(ex, CHORUS_E_INVALID_ARG, "the query needs key=<key> (URL-encoded)");
    return std::nullopt;
  }
  return key;
}

// A multihash: varint code, varint length, that many bytes, nothing after.
bool is_multihash(BytesView b) {
  uint64_t code = 0, len = 0;
  size_t used = 0, used2 = 0;
  if (p2p::read_uvarint(b, code, used) != p2p::VarintStatus::ok) return false;
  if (p2p::read_uvarint(b.subspan(used), len, used2) != p2p::VarintStatus::ok) return false;
  return b.size() == used + used2 + len && len > 0;
}

}  // namespace

int http_status(chorus_status st) {
  switch (st) {
    case CHORUS_E_INVALID_ARG: return 400;
    case CHORUS_E_NOT_FOUND: return 404;
    case CHORUS_E_TOO_LARGE: return 413;
    case CHORUS_E_UNSUPPORTED: return 501;
    case CHORUS_E_UNAVAILABLE: return 503;
    case CHORUS_E_TIMEOUT: return 504;
    default: return 500;
  }
}

Bytes provider_key(std::string_view text) {
  if (text.size() == 46 && text.substr(0, 2) == "Qm") {  // CIDv0: a base58btc sha2-256 multihash
    if (auto mh = p2p::base58_decode(text); mh && is_multihash(*mh)) return *mh;
  }
  if (text.size() > 8 && text[0] == 'b') {  // CIDv1, multibase base32: version 1, codec, multihash
    if (auto cid = p2p::base32_decode(text.substr(1))) {
      uint64_t version = 0, codec = 0;
      size_t used = 0, used2 = 0;
      const BytesView b(*cid);
      if (p2p::read_uvarint(b, version, used) == p2p::VarintStatus::ok && version == 1 &&
          p2p::read_uvarint(b.subspan(used), codec, used2) == p2p::VarintStatus::ok && is_multihash(b.subspan(used + used2)))
        return Bytes(cid->begin() + static_cast<std::ptrdiff_t>(used + used2), cid->end());
    }
  }
  return Bytes(text.begin(), text.end());
}

void register_routes(chorus::Host &host, NodeSource &source) {
  NodeSource *src = &source;

  host.route("GET", "/api/v1/dht/routing", [src](const chorus::HttpRequest &, chorus::HttpExchange ex) {
    auto n = src->node();
    if (!n) return respond_error(ex, CHORUS_E_UNAVAILABLE, "dht is not running");
    std::string text;
    chorus::ErrorBuffer err;
    if (auto st = n->routing_json(&text, err.get()); st != CHORUS_OK) return respond_error(ex, st, err.text());
    ex.respond(200, "application/json", text);
  });

  host.route("PUT", "/api/v1/dht/values", [src](const chorus::HttpRequest &req, chorus::HttpExchange ex) {
    auto n = src->node();
    if (!n) return respond_error(ex, CHORUS_E_UNAVAILABLE, "dht is not running");
    auto key = key_param(req, ex);
    if (!key) return;
    const std::string body(req.body());
    auto shared = share(std::move(ex));
    chorus::ErrorBuffer err;
    const std::string k = *key;
    const chorus_status st = n->put_value(
        Bytes(k.begin(), k.end()), Bytes(body.begin(), body.end()), 0,
        [shared, k](chorus_status st, const std::string &message, const Bytes &data) {
          if (st != CHORUS_OK) return respond_error(*shared, st, message);
          const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch()).count();
          json out{{"key", k}, {"stored_at", now}};
          auto d = json::parse(data.begin(), data.end(), nullptr, false);
          if (d.is_object() && d.contains("replicas")) out["replicas"] = d["replicas"];
          shared->respond(200, "application/json", dump(out));
        },
        err.get());
    if (st != CHORUS_OK) respond_error(*shared, st, err.text());
  });

  host.route("GET", "/api/v1/dht/values", [src](const chorus::HttpRequest &req, chorus::HttpExchange ex) {
    auto n = src->node();
    if (!n) return respond_error(ex, CHORUS_E_UNAVAILABLE, "dht is not running");
    auto key = key_param(req, ex);
    if (!key) return;
    auto shared = share(std::move(ex));
    chorus::ErrorBuffer err;
    const chorus_status st = n->get_value(
        Bytes(key->begin(), key->end()), 0,
        [shared](chorus_status st, const std::string &message, const Bytes &data) {
          if (st != CHORUS_OK) return respond_error(*shared, st, message);
          shared->respond(200, "application/octet-stream",
                          std::string_view(reinterpret_cast<const char *>(data.data()), data.size()));
        },
        err.get());
    if (st != CHORUS_OK) respond_error(*shared, st, err.text());
  });

  host.route("POST", "/api/v1/dht/providers", [src](const chorus::HttpRequest &req, chorus::HttpExchange ex) {
    auto n = src->node();
    if (!n) return respond_error(ex, CHORUS_E_UNAVAILABLE, "dht is not running");
    auto key = key_param(req, ex);
    if (!key) return;
    auto shared = share(std::move(ex));
    chorus::ErrorBuffer err;
    std::weak_ptr<Node> weak = n;
    const std::string k = *key;
    const chorus_status st = n->provide(
        provider_key(k), 0,
        [shared, k, weak](chorus_status st, const std::string &message, const Bytes &) {
          if (st != CHORUS_OK) return respond_error(*shared, st, message);
          // The answer names this node (the provider it announced) with its addresses.
          auto node = weak.lock();
          if (!node) return respond_error(*shared, CHORUS_E_UNAVAILABLE, "dht stopped");
          chorus::ErrorBuffer e2;
          const chorus_status st2 = node->find_peer(
              node->self(), 0,
              [shared, k, id = node->self().to_base58()](chorus_status, const std::string &, const Bytes &data) {
                json self = json::parse(std::string_view(reinterpret_cast<const char *>(data.data()), data.size()), nullptr, false);
                if (!self.is_object()) self = json{{"peer_id", id}, {"addrs", json::array()}};
                shared->respond(200, "application/json", dump(json{{"key", k}, {"providers", json::array({self})}}));
              },
              e2.get());
          if (st2 != CHORUS_OK) respond_error(*shared, st2, e2.text());
        },
        err.get());
    if (st != CHORUS_OK) respond_error(*shared, st, err.text());
  });

  host.route("GET", "/api/v1/dht/providers", [src](const chorus::HttpRequest &req, chorus::HttpExchange ex) {
    auto n = src->node();
    if (!n) return respond_error(ex, CHORUS_E_UNAVAILABLE, "dht is not running");
    auto key = key_param(req, ex);
    if (!key) return;
    auto shared = share(std::move(ex));
    chorus::ErrorBuffer err;
    const std::string k = *key;
    const chorus_status st = n->find_providers(
        provider_key(k), 0, 0,
        [shared, k](chorus_status st, const std::string &message, const Bytes &data) {
          if (st == CHORUS_E_NOT_FOUND)  // no provider is an answer, not an error
            return (void)shared->respond(200, "application/json", dump(json{{"key", k}, {"providers", json::array()}}));
          if (st != CHORUS_OK) return respond_error(*shared, st, message);
          json providers = json::parse(std::string_view(reinterpret_cast<const char *>(data.data()), data.size()), nullptr, false);
          if (!providers.is_array()) providers = json::array();
          shared->respond(200, "application/json", dump(json{{"key", k}, {"providers", providers}}));
        },
        err.get());
    if (st != CHORUS_OK) respond_error(*shared, st, err.text());
  });

  host.route("GET", "/api/v1/dht/peers/", CHORUS_ROUTE_PREFIX, [src](const chorus::HttpRequest &req, chorus::HttpExchange ex) {
    auto n = src->node();
    if (!n) return respond_error(ex, CHORUS_E_UNAVAILABLE, "dht is not running");
    constexpr std::string_view kPrefix = "/api/v1/dht/peers/";
    std::string text;
    if (!url_decode(req.path().substr(std::min(kPrefix.size(), req.path().size())), &text) || text.empty() ||
        text.find('/') != std::string::npos)
      return respond_error(ex, CHORUS_E_INVALID_ARG, "the path needs a peer id: /api/v1/dht/peers/<peer id>");
    std::string why;
    auto id = PeerId::parse(text, &why);
    if (!id) return respond_error(ex, CHORUS_E_INVALID_ARG, "not a peer id: " + why);
    auto shared = share(std::move(ex));
    chorus::ErrorBuffer err;
    const chorus_status st = n->find_peer(
        *id, 0,
        [shared](chorus_status st, const std::string &message, const Bytes &data) {
          if (st != CHORUS_OK) return respond_error(*shared, st, message);
          shared->respond(200, "application/json", std::string_view(reinterpret_cast<const char *>(data.data()), data.size()));
        },
        err.get());
    if (st != CHORUS_OK) respond_error(*shared, st, err.text());
  });
}

}  // namespace chorus::dht
