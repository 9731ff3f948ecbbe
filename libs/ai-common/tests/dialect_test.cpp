#include <gtest/gtest.h>

#include <chorus/plugin.hpp>
#include <chorus/services/ai_provider_v1.h>
#include <nlohmann/json.hpp>

#include "ai_common/dialect.hpp"

using namespace chorus::ai_common;
using nlohmann::json;

namespace {
ProviderIdentity who() { return ProviderIdentity{"ai-test", "9.9.9", "llama3.1"}; }

struct Decoded {
  chorus_status feed_status = CHORUS_OK, finish_status = CHORUS_OK;
  std::vector<std::string> chunks;
  std::string done, err;
};

Decoded decode(const Dialect &d, Kind kind, const std::string &request, const std::string &body, size_t step = 7) {
  Upstream up = d.build(kind, request, who());
  auto dec = d.decoder(kind, up, who());
  Decoded r;
  for (size_t i = 0; i < body.size() && r.feed_status == CHORUS_OK; i += step)
    r.feed_status = dec->feed(std::string_view(body).substr(i, step), r.chunks, r.err);
  if (r.feed_status == CHORUS_OK) r.finish_status = dec->finish(r.done, r.err);
  return r;
}
}  // namespace

TEST(Ollama, BuildsChatRequests) {
  auto d = make_ollama_dialect();
  Upstream up = d->build(Kind::chat, R"({"messages":[{"role":"user","content":"hi"}],"stream":true,"options":{"max_tokens":5}})", who());
  EXPECT_EQ(up.path, "/api/chat");
  json b = json::parse(up.body);
  EXPECT_EQ(b["model"], "llama3.1");
  EXPECT_EQ(b["stream"], true);
  EXPECT_EQ(b["options"]["num_predict"], 5);
  EXPECT_EQ(b["messages"][0]["content"], "hi");
  EXPECT_THROW(d->build(Kind::chat, "{not json", who()), chorus::Error);
  EXPECT_THROW(d->build(Kind::chat, R"({"messages":[]})", who()), chorus::Error);
  EXPECT_EQ(d->build(Kind::models, "", who()).path, "/api/tags");
}

TEST(Ollama, DecodesAnNdjsonStream) {
  auto d = make_ollama_dialect();
  const std::string body =
      "{\"model\":\"llama3.1\",\"created_at\":\"x\",\"message\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"done\":false}\n"
      "{\"model\":\"llama3.1\",\"created_at\":\"x\",\"message\":{\"role\":\"assistant\",\"content\":\"lo\"},\"done\":false}\n"
      "{\"model\":\"llama3.1\",\"created_at\":\"x\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,"
      "\"done_reason\":\"stop\",\"prompt_eval_count\":3,\"eval_count\":2}\n";
  for (size_t step : {1, 5, 1000}) {
    Decoded r = decode(*d, Kind::chat, R"({"messages":[{"role":"user","content":"hi"}],"stream":true})", body, step);
    ASSERT_EQ(r.finish_status, CHORUS_OK) << r.err;
    ASSERT_EQ(r.chunks.size(), 2u);
    json done = json::parse(r.done);
    EXPECT_EQ(done["content"], "Hello");
    EXPECT_EQ(done["usage"]["total_tokens"], 5);
    EXPECT_EQ(done["provider"], "ai-test");
  }
}

TEST(Ollama, DetectsTruncationMalformedLinesAndStreamErrors) {
  auto d = make_ollama_dialect();
  const std::string req = R"({"messages":[{"role":"user","content":"hi"}],"stream":true})";
  Decoded t = decode(*d, Kind::chat, req, "{\"message\":{\"content\":\"a\"},\"done\":false}\n");
  EXPECT_EQ(t.finish_status, CHORUS_E_PROTOCOL);
  Decoded m = decode(*d, Kind::chat, req, "{\"message\":{\"content\":\"a\"},\"done\":false}\nnot json\n");
  EXPECT_EQ(m.feed_status, CHORUS_E_PROTOCOL);
  Decoded e = decode(*d, Kind::chat, req, "{\"error\":\"model crashed\"}\n");
  EXPECT_EQ(e.feed_status, CHORUS_AI_E_UPSTREAM);
  EXPECT_NE(e.err.find("model crashed"), std::string::npos);
  EXPECT_EQ(d->error_text(404, R"({"error":"model \"x\" not found, try pulling it first"})"),
            "ollama answered HTTP 404: model \"x\" not found, try pulling it first");
}

TEST(Ollama, ConvertsToolCalls) {
  auto d = make_ollama_dialect();
  Decoded r = decode(*d, Kind::chat, R"({"messages":[{"role":"user","content":"weather?"}]})",
                 R"({"model":"m","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Paris"}}}]},"done":true})");
  ASSERT_EQ(r.finish_status, CHORUS_OK) << r.err;
  json done = json::parse(r.done);
  EXPECT_EQ(done["finish_reason"], "tool_calls");
  EXPECT_EQ(done["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(json::parse(done["tool_calls"][0]["function"]["arguments"].get<std::string>())["city"], "Paris");
}

TEST(OpenAi, DecodesSseWithToolCallDeltasAndUsage) {
  auto d = make_openai_dialect();
  const std::string body =
      "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n"
      "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\"\"}}]},\"finish_reason\":null}]}\n\n"
      "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n"
      "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":3,\"total_tokens\":7}}\n\n"
      "data: [DONE]\n\n";
  for (size_t step : {1, 3, 10000}) {
    Decoded r = decode(*d, Kind::chat, R"({"messages":[{"role":"user","content":"hi"}],"stream":true})", body, step);
    ASSERT_EQ(r.finish_status, CHORUS_OK) << r.err;
    json done = json::parse(r.done);
    EXPECT_EQ(done["content"], "Hi");
    EXPECT_EQ(done["finish_reason"], "tool_calls");
    EXPECT_EQ(done["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
    EXPECT_EQ(done["usage"]["total_tokens"], 7);
  }
}

TEST(OpenAi, RejectsTruncatedAndErrorStreams) {
  auto d = make_openai_dialect();
  const std::string req = R"({"model":"gpt","messages":[{"role":"user","content":"hi"}],"stream":true})";
  EXPECT_EQ(decode(*d, Kind::chat, req, "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n").finish_status, CHORUS_E_PROTOCOL);
  EXPECT_EQ(decode(*d, Kind::chat, req, "data: {broken\n\n").feed_status, CHORUS_E_PROTOCOL);
  Decoded e = decode(*d, Kind::chat, req, "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n");
  EXPECT_EQ(e.feed_status, CHORUS_AI_E_UPSTREAM);
  EXPECT_EQ(d->error_text(401, R"({"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}})"),
            "OpenAI-compatible server answered HTTP 401: Incorrect API key provided");
}

TEST(OpenAi, DecodesNonStreamingAnswersAndModels) {
  auto d = make_openai_dialect();
  Decoded r = decode(*d, Kind::chat, R"({"model":"gpt","messages":[{"role":"user","content":"hi"}]})",
                 R"({"id":"c","object":"chat.completion","created":1,"model":"gpt-x","choices":[{"index":0,"message":{"role":"assistant","content":"yo"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}})");
  ASSERT_EQ(r.finish_status, CHORUS_OK) << r.err;
  EXPECT_EQ(json::parse(r.done)["model"], "gpt-x");
  Decoded m = decode(*d, Kind::models, "", R"({"object":"list","data":[{"id":"a","object":"model","created":1,"owned_by":"x"}]})");
  ASSERT_EQ(m.finish_status, CHORUS_OK);
  EXPECT_EQ(json::parse(m.done)["models"][0]["id"], "a");
  EXPECT_EQ(decode(*d, Kind::chat, R"({"model":"gpt","messages":[{"role":"user","content":"hi"}]})", "{\"choices\":").finish_status, CHORUS_E_PROTOCOL);
}
