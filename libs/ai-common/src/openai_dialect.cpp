// OpenAI-compatible wire protocol (OpenAI, ResetData, vLLM, ...): POST {base}/chat/completions with
// SSE streaming ("data: {...}" events ending with "data: [DONE]"), GET {base}/models, bearer auth
// (added by the plugin), tool calls passed through.
#include "ai_common/stream_parsers.hpp"
#include "dialect_common.hpp"

namespace chorus::ai_common {
namespace {
using detail::json;

const detail::DecoderBase::Wire kOpenAiWire{
    "the OpenAI-compatible server", "SSE event too long", "/models", "data",
    {"id"}, {"owned_by", "created"}};

std::string error_message(const json &j) {
  auto e = j.find("error");
  if (e == j.end()) return detail::excerpt(detail::dump(j));
  if (e->is_string()) return e->get<std::string>();
  if (e->is_object()) return detail::str_or(*e, "message", detail::excerpt(detail::dump(*e)));
  return detail::excerpt(detail::dump(*e));
}

class OpenAiDecoder final : public detail::DecoderBase {
 public:
  OpenAiDecoder(Kind kind, bool stream, std::string model, const ProviderIdentity &who)
      : DecoderBase(kOpenAiWire, kind, stream, std::move(model), who), sse_(4u << 20) {}

 private:
  bool feed_stream(std::string_view bytes, std::vector<std::string> &chunks, chorus_status &st,
                   std::string &err) override {
    return sse_.feed(bytes, [&](std::string_view event, std::string_view data) {
      if (done_seen_) {
        st = CHORUS_E_PROTOCOL;
        err = "data after [DONE]";
        return false;
      }
      if (data == "[DONE]") {
        done_seen_ = true;
        return true;
      }
      json j = json::parse(data, nullptr, false);
      if (j.is_discarded() || !j.is_object()) {
        st = CHORUS_E_PROTOCOL;
        err = "malformed SSE data from the OpenAI-compatible server: " + detail::excerpt(data);
        return false;
      }
      if (event == "error" || j.contains("error")) {
        st = CHORUS_E_SERVICE_BASE;
        err = "upstream stream error: " + error_message(j);
        return false;
      }
      st = absorb_chunk(j, chunks, err);
      return st == CHORUS_OK;
    });
  }

  chorus_status end_stream(std::string &err) override {
    if (done_seen_) return CHORUS_OK;
    err = sse_.mid_event() ? "stream truncated inside an event" : "stream ended without [DONE] (truncated answer)";
    return CHORUS_E_PROTOCOL;
  }

  chorus_status absorb_whole(const json &j, std::string &err) override {
    if (j.contains("error")) {
      err = "upstream error: " + error_message(j);
      return CHORUS_E_SERVICE_BASE;
    }
    auto ch = j.find("choices");
    if (ch == j.end() || !ch->is_array() || ch->empty() || !(*ch)[0].is_object()) {
      err = "answer without choices";
      return CHORUS_E_PROTOCOL;
    }
    const json &c0 = (*ch)[0];
    auto msg = c0.find("message");
    if (msg == c0.end() || !msg->is_object()) {
      err = "answer without a message";
      return CHORUS_E_PROTOCOL;
    }
    content_ = detail::str_or(*msg, "content");
    if (auto tc = msg->find("tool_calls"); tc != msg->end() && tc->is_array()) tool_calls_ = *tc;
    finish_reason_ = detail::str_or(c0, "finish_reason", "stop");
    model_ = detail::str_or(j, "model", model_);
    if (auto u = j.find("usage"); u != j.end() && u->is_object()) usage_ = *u;
    return CHORUS_OK;
  }

  void before_done() override {
    if (stream_) tool_calls_ = tools_.calls;
  }

  chorus_status absorb_chunk(const json &j, std::vector<std::string> &chunks, std::string &err) {
    model_ = detail::str_or(j, "model", model_);
    if (auto u = j.find("usage"); u != j.end() && u->is_object()) usage_ = *u;
    auto ch = j.find("choices");
    if (ch == j.end()) {
      err = "stream chunk without choices";
      return CHORUS_E_PROTOCOL;
    }
    if (!ch->is_array()) {
      err = "choices must be an array";
      return CHORUS_E_PROTOCOL;
    }
    if (ch->empty()) return CHORUS_OK;  // e.g. the usage-only chunk
    const json &c0 = (*ch)[0];
    if (!c0.is_object()) {
      err = "choice must be an object";
      return CHORUS_E_PROTOCOL;
    }
    json out = json::object();
    if (auto delta = c0.find("delta"); delta != c0.end() && delta->is_object()) {
      std::string text = detail::str_or(*delta, "content");
      if (!text.empty()) {
        content_ += text;
        out["delta"] = text;
      }
      if (auto tc = delta->find("tool_calls"); tc != delta->end() && tc->is_array()) {
        for (const auto &d : *tc) tools_.add_delta(d);
        out["tool_calls"] = *tc;
      }
    }
    if (auto fr = c0.find("finish_reason"); fr != c0.end() && fr->is_string()) finish_reason_ = fr->get<std::string>();
    if (!out.empty()) chunks.push_back(detail::dump(out));
    return CHORUS_OK;
  }

  SseParser sse_;
  detail::ToolCallAccumulator tools_;
};

class OpenAiDialect final : public Dialect {
 public:
  const char *name() const noexcept override { return "openai"; }

  Upstream build(Kind kind, std::string_view text, const ProviderIdentity &who) const override {
    Upstream up;
    json req, body;
    if (!detail::begin_build(kind, text, who, "/models", up, req, body)) return up;
    if (up.stream) body["stream_options"] = {{"include_usage", true}};
    if (kind == Kind::chat) {
      body["messages"] = detail::messages_of(req);
      for (const char *k : {"tools", "tool_choice", "response_format"})
        if (auto it = req.find(k); it != req.end() && !it->is_null()) body[k] = *it;
      if (body.contains("tools") && !body["tools"].is_array()) throw chorus::Error(CHORUS_E_INVALID_ARG, "tools must be an array");
    } else {
      auto p = req.find("prompt");
      if (p == req.end() || !p->is_string()) throw chorus::Error(CHORUS_E_INVALID_ARG, "prompt must be a string");
      json msgs = json::array();
      if (auto s = req.find("system"); s != req.end() && s->is_string()) msgs.push_back({{"role", "system"}, {"content", *s}});
      msgs.push_back({{"role", "user"}, {"content", *p}});
      body["messages"] = std::move(msgs);
    }
    if (const json *o = detail::options_of(req))
      for (const char *k : {"temperature", "top_p", "max_tokens", "stop", "seed", "presence_penalty", "frequency_penalty"})
        if (auto it = o->find(k); it != o->end()) body[k] = *it;
    up.path = "/chat/completions";
    up.body = detail::dump(body);
    return up;
  }

  std::unique_ptr<Decoder> decoder(Kind kind, const Upstream &up, const ProviderIdentity &who) const override {
    return std::make_unique<OpenAiDecoder>(kind, up.stream, up.model, who);
  }

  std::string error_text(long status, std::string_view body) const override {
    json j = json::parse(body, nullptr, false);
    std::string msg = (!j.is_discarded() && j.is_object()) ? error_message(j) : detail::excerpt(body);
    return "OpenAI-compatible server answered HTTP " + std::to_string(status) + (msg.empty() ? "" : ": " + msg);
  }
};
}  // namespace

std::unique_ptr<Dialect> make_openai_dialect() { return std::make_unique<OpenAiDialect>(); }

}  // namespace chorus::ai_common
