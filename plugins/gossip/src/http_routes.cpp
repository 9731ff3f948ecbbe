#include "http_routes.hpp"

#include <atomic>
#include <mutex>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "envelope.hpp"

namespace chorus::gossip {

using json = nlohmann::json;

// Open event streams, for the keep-alive.
class SseRegistry {
 public:
  struct Stream {
    std::mutex mu;
    chorus::HttpExchange ex;
    std::weak_ptr<Node> node;
    std::atomic<uint64_t> sub{0};
    bool open = true;
  };
  std::mutex mu;
  std::vector<std::weak_ptr<Stream>> streams;
};

namespace {

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string error_body(chorus_status st, std::string_view message) {
  return json{{"error", {{"code", chorus_status_name(st)}, {"message", message}}}}.dump(-1, ' ', false,
                                                                                       json::error_handler_t::replace);
}

int http_status(chorus_status st) {
  switch (st) {
    case CHORUS_E_INVALID_ARG: return 400;
    case CHORUS_E_NOT_FOUND: return 404;
    case CHORUS_E_TOO_LARGE: return 413;
    case CHORUS_E_BUSY: return 429;
    case CHORUS_E_UNAVAILABLE: return 503;
    default: return 500;
  }
}

void respond_error(chorus::HttpExchange &ex, chorus_status st, std::string_view message) {
  ex.respond(http_status(st), "application/json", error_body(st, message));
}

void respond_json(chorus::HttpExchange &ex, const json &body) {
  ex.respond(200, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace));
}

std::string hex(const uint8_t *b, size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += digits[b[i] >> 4];
    s += digits[b[i] & 15];
  }
  return s;
}

// Parses the request body as a JSON object with a valid "topic"; answers the error itself.
std::optional<json> topic_body(const chorus::HttpRequest &req, chorus::HttpExchange &ex) {
  auto body = json::parse(req.body(), nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    respond_error(ex, CHORUS_E_INVALID_ARG, "the body must be a JSON object");
    return std::nullopt;
  }
  if (!body.contains("topic") || !body["topic"].is_string()) {
    respond_error(ex, CHORUS_E_INVALID_ARG, "\"topic\" must be a string");
    return std::nullopt;
  }
  chorus::ErrorBuffer err;
  if (check_topic(body["topic"].get<std::string>(), err.get()) != CHORUS_OK) {
    respond_error(ex, CHORUS_E_INVALID_ARG, err.text());
    return std::nullopt;
  }
  return body;
}

}  // namespace

std::string base64_encode(const uint8_t *data, size_t len) {
  std::string out;
  out.reserve((len + 2) / 3 * 4);
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = static_cast<uint32_t>(data[i]) << 16;
    if (i + 1 < len) v |= static_cast<uint32_t>(data[i + 1]) << 8;
    if (i + 2 < len) v |= data[i + 2];
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += i + 1 < len ? kB64[(v >> 6) & 63] : '=';
    out += i + 2 < len ? kB64[v & 63] : '=';
  }
  return out;
}

bool base64_decode(std::string_view text, std::string *out) {
  out->clear();
  uint32_t acc = 0;
  int bits = 0;
  size_t pad = 0;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+' || c == '-') v = 62;
    else if (c == '/' || c == '_') v = 63;
    else if (c == '=') {
      ++pad;
      continue;
    } else {
      return false;
    }
    if (pad != 0) return false;  // data after padding
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return pad <= 2 && bits < 6;
}

std::string sse_event(const chorus_pubsub_message &m) {
  json ev;
  ev["topic"] = m.topic;
  ev["from"] = m.from_text != nullptr ? m.from_text : "";
  std::string seqno;
  if (m.seqno != nullptr && m.seqno_len > 0 && m.seqno_len <= 8) {
    uint64_t v = 0;
    for (size_t i = 0; i < m.seqno_len; ++i) v = (v << 8) | m.seqno[i];
    seqno = std::to_string(v);
  }
  ev["seqno"] = seqno;
  ev["message_id"] = hex(m.message_id, m.message_id_len);
  bool envelope = false;
  if (m.type != nullptr && m.type[0] != '\0') {
    auto data = json::parse(std::string_view(reinterpret_cast<const char *>(m.data), m.data_len), nullptr, false);
    if (data.is_object()) {
      ev["data"] = std::move(data);
      envelope = true;
    }
  }
  if (!envelope) ev["raw_base64"] = base64_encode(m.data, m.data_len);
  // One line: JSON escapes every newline inside strings, so "data:" needs no splitting.
  return "data: " + ev.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

void sse_keepalive(SseRegistry &registry) {
  std::vector<std::shared_ptr<SseRegistry::Stream>> live;
  {
    std::lock_guard lk(registry.mu);
    std::erase_if(registry.streams, [&](const std::weak_ptr<SseRegistry::Stream> &w) {
      auto s = w.lock();
      if (!s) return true;  // its subscription ended
      live.push_back(std::move(s));
      return false;
    });
  }
  for (auto &s : live) {
    bool closed;
    {
      std::lock_guard lk(s->mu);
      if (s->open && s->ex.write(": keepalive\n\n") != CHORUS_OK) {
        s->open = false;
        s->ex.end();
      }
      closed = !s->open;
    }
    if (closed)
      if (auto n = s->node.lock()) n->unsubscribe(s->sub.load());  // ends the subscription and frees the stream
  }
}

std::shared_ptr<SseRegistry> register_routes(chorus::Host &host, NodeSource &source) {
  auto registry = std::make_shared<SseRegistry>();
  NodeSource *src = &source;

  host.route("POST", "/api/v1/pubsub/publish", [src](const chorus::HttpRequest &req, chorus::HttpExchange ex) {
    auto n = src->node();
    if (!n) return respond_error(ex, CHORUS_E_UNAVAILABLE, "gossip is not running");
    auto body = topic_body(req, ex);
    if (!body) return;
    const std::string topic = (*body)["topic"].get<std::string>();
    chorus::ErrorBuffer err;
    Bytes id;
    chorus_status st;
    if (body->contains("raw_base64")) {
      if (!(*body)["raw_base64"].is_string()) return respond_error(ex, CHORUS_E_INVALID_ARG, "\"raw_base64\" must be a string");
      std::string raw;
      if (!base64_decode((*body)["raw_base64"].get<std::string>(), &raw))
        return respond_error(ex, CHORUS_E_INVALID_ARG, "\"raw_base64\" is not valid base64");
      st = n->publish_raw(topic, Bytes(raw.begin(), raw.end()), &id, err.get());
    } else {
      if (!body->contains("type") || !(*body)["type"].is_string())
        return respond_error(ex, CHORUS_E_INVALID_ARG, "\"type\" must be a string (or give \"raw_base64\")");
      uint32_t hops = 0;
      if (body->contains("hop_count")) {
        const json &h = (*body)["hop_count"];
        if (!h.is_number_unsigned() || h.get<uint64_t>() > n->settings().hop_limit)
          return respond_error(ex, CHORUS_E_INVALID_ARG,
                               "\"hop_count\" must be an integer from 0 to hop_limit (" + std::to_string(n->settings().hop_limit) + ")");
        hops = static_cast<uint32_t>(h.get<uint64_t>());
      }
      json data = body->contains("data") ? (*body)["data"] : json::object();
      st = n->publish_envelope(topic, (*body)["type"].get<std::string>(), std::move(data), hops, &id, err.get());
    }
    if (st != CHORUS_OK) return respond_error(ex, st, err.text());
    respond_json(ex, {{"message_id", hex(id.data(), id.size())}, {"topic", topic}});
  });

  for (const char *verb : {"join", "leave"}) {
    const bool join = std::string_view(verb) == "join";
    host.route("POST", std::string("/api/v1/pubsub/") + verb, [src, join](const chorus::HttpRequest &req, chorus::HttpExchange ex) {
      auto n = src->node();
      if (!n) return respond_error(ex, CHORUS_E_UNAVAILABLE, "gossip is not running");
      auto body = topic_body(req, ex);
      if (!body) return;
      const std::string topic = (*body)["topic"].get<std::string>();
      chorus::ErrorBuffer err;
      chorus_status st = join ? n->join(topic, err.get()) : n->leave(topic, err.get());
      bool subscribed = false;
      if (st == CHORUS_OK) st = n->is_joined(topic, &subscribed, err.get());
      if (st != CHORUS_OK) return respond_error(ex, st, err.text());
      respond_json(ex, {{"topic", topic}, {"subscribed", subscribed}});
    });
  }

  host.route("GET", "/api/v1/pubsub/topics", [src](const chorus::HttpRequest &, chorus::HttpExchange ex) {
    auto n = src->node();
    if (!n) return respond_error(ex, CHORUS_E_UNAVAILABLE, "gossip is not running");
    std::string text;
    chorus::ErrorBuffer err;
    if (auto st = n->topics_json(&text, err.get()); st != CHORUS_OK) return respond_error(ex, st, err.text());
    ex.respond(200, "application/json", text);
  });

  host.route("GET", "/api/v1/pubsub/peers", [src](const chorus::HttpRequest &, chorus::HttpExchange ex) {
    auto n = src->node();
    if (!n) return respond_error(ex, CHORUS_E_UNAVAILABLE, "gossip is not running");
    std::string text;
    chorus::ErrorBuffer err;
    if (auto st = n->peers_json(&text, err.get()); st != CHORUS_OK) return respond_error(ex, st, err.text());
    ex.respond(200, "application/json", text);
  });

  std::weak_ptr<SseRegistry> weak_registry = registry;
  host.route("GET", "/api/v1/pubsub/stream", [src, weak_registry](const chorus::HttpRequest &req, chorus::HttpExchange ex) {
    auto n = src->node();
    if (!n) return respond_error(ex, CHORUS_E_UNAVAILABLE, "gossip is not running");
    auto topic = query_param(req.query(), "topic");
    if (!topic) return respond_error(ex, CHORUS_E_INVALID_ARG, "the query needs topic=<topic>");
    chorus::ErrorBuffer err;
    if (check_topic(*topic, err.get()) != CHORUS_OK) return respond_error(ex, CHORUS_E_INVALID_ARG, err.text());
    auto stream = std::make_shared<SseRegistry::Stream>();
    stream->node = n;
    stream->ex = std::move(ex);
    {
      std::lock_guard lk(stream->mu);
      if (stream->ex.begin_stream(200, "text/event-stream", {{"Cache-Control", "no-cache"}}) != CHORUS_OK) return;
    }
    // The handler holds the stream; ending the subscription destroys it, which ends the response.
    uint64_t sub = 0;
    std::weak_ptr<Node> weak_node = n;
    const chorus_status st = n->subscribe(
        *topic,
        [stream, weak_node](const chorus_pubsub_message &m) {
          bool closed;
          {
            std::lock_guard lk(stream->mu);
            if (stream->open && stream->ex.write(sse_event(m)) != CHORUS_OK) {  // gone, or too slow (BUSY)
              stream->open = false;
              stream->ex.end();
            }
            closed = !stream->open;
          }
          if (closed)
            if (auto node = weak_node.lock()) node->unsubscribe(stream->sub.load());
        },
        &sub, err.get());
    std::lock_guard lk(stream->mu);
    if (st != CHORUS_OK) {
      stream->ex.write("event: error\ndata: " + error_body(st, err.text()) + "\n\n");
      stream->ex.end();
      stream->open = false;
      return;
    }
    stream->sub = sub;
    // Subscribed: a comment tells the client that events from now on reach it.
    if (stream->ex.write(": subscribed " + *topic + "\n\n") != CHORUS_OK) stream->open = false;
    if (auto r = weak_registry.lock()) {
      std::lock_guard rlk(r->mu);
      r->streams.push_back(stream);
    }
  });
  return registry;
}

}  // namespace chorus::gossip
