#pragma once
#include <chorus/plugin.hpp>
#include <chorus/services/ai_provider_v1.h>

#include <nlohmann/json.hpp>

#include "ai_common/dialect.hpp"

namespace chorus::ai_common::detail {
using json = nlohmann::json;

inline json parse_request(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw chorus::Error(CHORUS_E_INVALID_ARG, "request is not valid JSON");
  if (!j.is_object()) throw chorus::Error(CHORUS_E_INVALID_ARG, "request must be a JSON object");
  return j;
}

inline std::string pick_model(const json &req, const ProviderIdentity &who) {
  std::string model;
  if (auto it = req.find("model"); it != req.end() && !it->is_null()) {
    if (!it->is_string()) throw chorus::Error(CHORUS_E_INVALID_ARG, "model must be a string");
    model = it->get<std::string>();
  }
  if (model.empty()) model = who.default_model;
  if (model.empty()) throw chorus::Error(CHORUS_E_INVALID_ARG, "no model given and the provider has no default_model");
  return model;
}

inline bool want_stream(const json &req) {
  auto it = req.find("stream");
  if (it == req.end() || it->is_null()) return false;
  if (!it->is_boolean()) throw chorus::Error(CHORUS_E_INVALID_ARG, "stream must be a boolean");
  return it->get<bool>();
}

inline const json &messages_of(const json &req) {
  auto it = req.find("messages");
  if (it == req.end() || !it->is_array() || it->empty())
    throw chorus::Error(CHORUS_E_INVALID_ARG, "messages must be a non-empty array");
  for (const auto &m : *it) {
    if (!m.is_object()) throw chorus::Error(CHORUS_E_INVALID_ARG, "each message must be an object");
    auto r = m.find("role");
    if (r == m.end() || !r->is_string()) throw chorus::Error(CHORUS_E_INVALID_ARG, "each message needs a string role");
    auto c = m.find("content");
    if (c != m.end() && !c->is_string() && !c->is_null() && !c->is_array())
      throw chorus::Error(CHORUS_E_INVALID_ARG, "message content must be a string");
  }
  return *it;
}

inline const json *options_of(const json &req) {
  auto it = req.find("options");
  if (it == req.end() || it->is_null()) return nullptr;
  if (!it->is_object()) throw chorus::Error(CHORUS_E_INVALID_ARG, "options must be an object");
  return &*it;
}

// The start of every dialect's build(): a model-list request is a bare GET of `models_path` (returns
// false); otherwise the request is parsed and validated, and `body` starts with model and stream.
inline bool begin_build(Kind kind, std::string_view text, const ProviderIdentity &who, const char *models_path,
                        Upstream &up, json &req, json &body) {
  if (kind == Kind::models) {
    up.method = "GET";
    up.path = models_path;
    return false;
  }
  req = parse_request(text);
  up.model = pick_model(req, who);
  up.stream = want_stream(req);
  body = json{{"model", up.model}, {"stream", up.stream}};
  return true;
}

inline std::string dump(const json &j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// Printable excerpt of untrusted bytes for error messages.
inline std::string excerpt(std::string_view s, size_t max = 200) {
  std::string out;
  for (char c : s.substr(0, max)) out.push_back((static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? ' ' : c);
  if (s.size() > max) out += "...";
  return out;
}

inline std::string str_or(const json &j, const char *key, std::string fallback = {}) {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

inline int64_t int_or(const json &j, const char *key, int64_t fallback = 0) {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : fallback;
}

// Accumulates OpenAI-style tool call deltas by index.
struct ToolCallAccumulator {
  json calls = json::array();
  void add_delta(const json &delta) {
    if (!delta.is_object()) return;
    size_t index = calls.size();
    if (auto it = delta.find("index"); it != delta.end() && it->is_number_unsigned() && it->get<uint64_t>() < 1024)
      index = it->get<size_t>();
    while (calls.size() <= index) calls.push_back(json{{"type", "function"}, {"function", {{"name", ""}, {"arguments", ""}}}});
    json &c = calls[index];
    if (auto id = delta.find("id"); id != delta.end() && id->is_string()) c["id"] = *id;
    if (auto ty = delta.find("type"); ty != delta.end() && ty->is_string()) c["type"] = *ty;
    if (auto fn = delta.find("function"); fn != delta.end() && fn->is_object()) {
      if (auto n = fn->find("name"); n != fn->end() && n->is_string())
        c["function"]["name"] = c["function"]["name"].get<std::string>() + n->get<std::string>();
      if (auto a = fn->find("arguments"); a != fn->end() && a->is_string())
        c["function"]["arguments"] = c["function"]["arguments"].get<std::string>() + a->get<std::string>();
    }
  }
};

// The decoding both wire dialects share: non-streamed and model-list bodies are buffered and parsed
// whole; streamed bodies go to the dialect's framing (NDJSON lines, SSE events), whose overflow is a
// protocol error; the done JSON has one shape. A dialect supplies only what differs: framing, how
// one message is absorbed, and where the model list lives.
class DecoderBase : public Decoder {
 public:
  // What differs between the dialects' wire formats, as data.
  struct Wire {
    const char *server;           // "ollama", "the OpenAI-compatible server" (for messages)
    const char *framing_overflow; // message when one line / event exceeds the framing limit
    const char *models_path;      // "/api/tags", "/models"
    const char *models_key;       // the array member of the model-list answer
    std::vector<const char *> model_id_keys;      // first string member found is the id
    std::vector<const char *> model_detail_keys;  // copied as they are
  };
  chorus_status feed(std::string_view bytes, std::vector<std::string> &chunks, std::string &err) final;
  chorus_status finish(std::string &done, std::string &err) final;

 protected:
  DecoderBase(const Wire &wire, Kind kind, bool stream, std::string model, const ProviderIdentity &who)
      : wire_(wire), kind_(kind), stream_(stream), model_(std::move(model)), who_(who) {}

  // Streamed bytes into chunks. Return false to stop: with `st` set for an error of the data, or
  // with `st` left CHORUS_OK when the framing overflowed.
  virtual bool feed_stream(std::string_view bytes, std::vector<std::string> &chunks, chorus_status &st,
                           std::string &err) = 0;
  // End of a streamed body: checks that it was complete (a truncated stream is an error).
  virtual chorus_status end_stream(std::string &err) = 0;
  // A whole non-streamed answer (already known to be a JSON object).
  virtual chorus_status absorb_whole(const json &j, std::string &err) = 0;
  // Last adjustments to the done fields before they are written.
  virtual void before_done() {}

  const Wire &wire_;
  Kind kind_;
  bool stream_;
  std::string model_;
  ProviderIdentity who_;
  std::string body_, content_, finish_reason_ = "stop";
  json tool_calls_ = json::array();  // OpenAI-style, complete
  json usage_ = json::object();
  bool done_seen_ = false;

 private:
  chorus_status finish_models(std::string &done, std::string &err);
};

}  // namespace chorus::ai_common::detail
