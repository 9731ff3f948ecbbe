// UCXL codes, the status -> code mapping, request ids and the success / error envelopes.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include <chorus/services/ucxi_v1.h>

#include "envelope.hpp"

namespace {

using namespace chorus::ucxi;

// 2026-12-07T01:02:03.456Z
constexpr int64_t kWhen = 1796605323456;

Stamp fixed_stamp() { return Stamp{"20261207-010203-0badc0de", kWhen}; }

TEST(UcxiEnvelope, CodeTable) {
  struct Row {
    Code code;
    const char *text;
    int status;
  };
  const Row rows[] = {
      {Code::kSuccess, "UCXL-200-SUCCESS", 200},
      {Code::kCreated, "UCXL-201-CREATED", 201},
      {Code::kAccepted, "UCXL-202-ACCEPTED", 202},
      {Code::kNoContent, "UCXL-204-NO_CONTENT", 204},
      {Code::kBadRequest, "UCXL-400-BAD_REQUEST", 400},
      {Code::kInvalidAddress, "UCXL-400-INVALID_ADDRESS", 400},
      {Code::kInvalidPayload, "UCXL-400-INVALID_PAYLOAD", 400},
      {Code::kTemporalInvalid, "UCXL-400-TEMPORAL_INVALID", 400},
      {Code::kForbidden, "UCXL-403-FORBIDDEN", 403},
      {Code::kNotFound, "UCXL-404-NOT_FOUND", 404},
      {Code::kResolutionFailed, "UCXL-404-RESOLUTION_FAILED", 404},
      {Code::kMethodNotAllowed, "UCXL-405-METHOD_NOT_ALLOWED", 405},
      {Code::kConflict, "UCXL-409-CONFLICT", 409},
      {Code::kPayloadTooLarge, "UCXL-413-PAYLOAD_TOO_LARGE", 413},
      {Code::kUnsupportedMediaType, "UCXL-415-UNSUPPORTED_MEDIA_TYPE", 415},
      {Code::kUnprocessable, "UCXL-422-UNPROCESSABLE", 422},
      {Code::kInternal, "UCXL-500-INTERNAL", 500},
      {Code::kNotImplemented, "UCXL-501-NOT_IMPLEMENTED", 501},
      {Code::kServiceUnavailable, "UCXL-503-SERVICE_UNAVAILABLE", 503},
      {Code::kGatewayTimeout, "UCXL-504-GATEWAY_TIMEOUT", 504},
  };
  ASSERT_EQ(all_codes().size(), std::size(rows));
  std::set<std::string_view> texts;
  for (const Row &r : rows) {
    SCOPED_TRACE(r.text);
    EXPECT_EQ(code_text(r.code), r.text);
    EXPECT_EQ(http_status(r.code), r.status);
    EXPECT_FALSE(default_message(r.code).empty());
    EXPECT_EQ(code_from_text(r.text), r.code);
    // The code's text carries its HTTP status.
    EXPECT_EQ(std::string(r.text).substr(5, 3), std::to_string(r.status));
    texts.insert(code_text(r.code));
  }
  EXPECT_EQ(texts.size(), std::size(rows));
  EXPECT_FALSE(code_from_text("UCXL-418-TEAPOT").has_value());
  EXPECT_FALSE(code_from_text("").has_value());
}

TEST(UcxiEnvelope, StatusToCode) {
  EXPECT_EQ(code_for_status(CHORUS_OK), Code::kSuccess);
  EXPECT_EQ(code_for_status(CHORUS_E_INVALID_ARG, {.field = "address"}), Code::kInvalidAddress);
  EXPECT_EQ(code_for_status(CHORUS_E_INVALID_ARG, {.field = "role"}), Code::kUnprocessable);
  EXPECT_EQ(code_for_status(CHORUS_E_INVALID_ARG, {.field = "content"}), Code::kInvalidPayload);
  EXPECT_EQ(code_for_status(CHORUS_E_INVALID_ARG, {.field = "citations[0]"}), Code::kInvalidPayload);
  EXPECT_EQ(code_for_status(CHORUS_E_INVALID_ARG), Code::kInvalidPayload);
  EXPECT_EQ(code_for_status(CHORUS_E_TOO_LARGE), Code::kPayloadTooLarge);
  EXPECT_EQ(code_for_status(CHORUS_E_NOT_FOUND), Code::kNotFound);
  EXPECT_EQ(code_for_status(CHORUS_E_NOT_FOUND, {.field = {}, .discover = true}), Code::kResolutionFailed);
  EXPECT_EQ(code_for_status(CHORUS_E_UCXI_TEMPORAL), Code::kTemporalInvalid);
  EXPECT_EQ(code_for_status(CHORUS_E_UCXI_NOT_AUTHORISED), Code::kForbidden);
  EXPECT_EQ(code_for_status(CHORUS_E_TIMEOUT), Code::kGatewayTimeout);
  EXPECT_EQ(code_for_status(CHORUS_E_UNAVAILABLE), Code::kServiceUnavailable);
  EXPECT_EQ(code_for_status(CHORUS_E_CANCELLED), Code::kServiceUnavailable);
  EXPECT_EQ(code_for_status(CHORUS_E_UNSUPPORTED), Code::kInternal);
  EXPECT_EQ(code_for_status(CHORUS_E_EXISTS), Code::kInternal);
  EXPECT_EQ(code_for_status(CHORUS_E_INTERNAL), Code::kInternal);
  EXPECT_EQ(code_for_status(CHORUS_E_IO), Code::kInternal);
  EXPECT_EQ(code_for_status(CHORUS_E_SERVICE_BASE + 99), Code::kInternal);
}

TEST(UcxiEnvelope, RequestIds) {
  EXPECT_EQ(format_request_id(kWhen, 0x0badc0de), "20261207-010203-0badc0de");
  EXPECT_EQ(format_request_id(0, 0), "19700101-000000-00000000");
  EXPECT_EQ(format_request_id(kWhen, 0xffffffffu), "20261207-010203-ffffffff");
  EXPECT_TRUE(is_request_id("20261207-010203-0badc0de"));
  EXPECT_FALSE(is_request_id("20261207-010203-0BADC0DE"));  // lowercase hex only
  EXPECT_FALSE(is_request_id("20261207-010203-0badc0d"));
  EXPECT_FALSE(is_request_id("20261207T010203-0badc0de"));
  EXPECT_FALSE(is_request_id("2026120a-010203-0badc0de"));
  EXPECT_FALSE(is_request_id(""));

  // Fresh ids have the shape, and the random part differs (2^-32 per pair to collide by chance: a
  // handful of draws that all agree means the generator is broken).
  std::set<std::string> randoms;
  for (int i = 0; i < 8; ++i) {
    const std::string id = new_request_id();
    EXPECT_TRUE(is_request_id(id)) << id;
    randoms.insert(id.substr(16));
  }
  EXPECT_GT(randoms.size(), 1u);
  const Stamp s = Stamp::now();
  EXPECT_TRUE(is_request_id(s.request_id));
  EXPECT_GT(s.unix_ms, kWhen - 400LL * 24 * 3600 * 1000);  // a clock in this era
}

TEST(UcxiEnvelope, SuccessEnvelope) {
  const nlohmann::json j = success_envelope(Code::kCreated, {{"version", 3}}, fixed_stamp());
  const nlohmann::json expected = nlohmann::json::parse(R"({"response": {
      "code": "UCXL-201-CREATED", "message": "Resource created successfully", "data": {"version": 3},
      "details": {}, "request_id": "20261207-010203-0badc0de", "timestamp": "2026-12-07T01:02:03.456Z"}})");
  EXPECT_EQ(j, expected);

  const nlohmann::json custom =
      success_envelope(Code::kSuccess, nullptr, fixed_stamp(), "resolved", {{"cache", "hit"}});
  EXPECT_EQ(custom["response"]["message"], "resolved");
  EXPECT_EQ(custom["response"]["details"], (nlohmann::json{{"cache", "hit"}}));
  EXPECT_TRUE(custom["response"]["data"].is_null());
  // A null details becomes {}.
  EXPECT_EQ(success_envelope(Code::kSuccess, {}, fixed_stamp(), "", nullptr)["response"]["details"],
            nlohmann::json::object());
}

TEST(UcxiEnvelope, ErrorEnvelope) {
  ErrorBody e;
  e.code = Code::kNotFound;
  e.path = "/ucxi/v1/get";
  const nlohmann::json j = error_envelope(e, fixed_stamp());
  const nlohmann::json expected = nlohmann::json::parse(R"({"error": {
      "code": "UCXL-404-NOT_FOUND", "message": "Resource not found", "details": {}, "source": "ucxi-server",
      "path": "/ucxi/v1/get", "request_id": "20261207-010203-0badc0de", "timestamp": "2026-12-07T01:02:03.456Z"}})");
  EXPECT_EQ(j, expected);
  EXPECT_FALSE(j["error"].contains("cause"));

  e.cause = Cause{"CHORUS_E_NOT_FOUND", "no record"};
  e.message = "no version of ucxl://a:r@p:t/x";
  const nlohmann::json with_cause = error_envelope(e, fixed_stamp());
  EXPECT_EQ(with_cause["error"]["cause"], (nlohmann::json{{"code", "CHORUS_E_NOT_FOUND"}, {"message", "no record"}}));
  EXPECT_EQ(with_cause["error"]["message"], "no version of ucxl://a:r@p:t/x");
}

TEST(UcxiEnvelope, AddressError) {
  chorus::ucxl::ParseError pe;
  ASSERT_FALSE(chorus::ucxl::parse("ucxl://a!:b@c:d/*^/x", &pe).has_value());
  const ErrorBody e = address_error(pe, "/ucxi/v1/get");
  EXPECT_EQ(e.code, Code::kInvalidAddress);
  EXPECT_EQ(e.message, pe.what());
  EXPECT_EQ(e.details, (nlohmann::json{{"field", "agent"},
                                        {"provided_address", "ucxl://a!:b@c:d/*^/x"},
                                        {"parse_error", pe.message}}));
  const Reply r = error_reply(e, fixed_stamp());
  EXPECT_EQ(r.http_status, 400);
  EXPECT_EQ(r.request_id, "20261207-010203-0badc0de");
  const auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body["error"]["code"], "UCXL-400-INVALID_ADDRESS");
  EXPECT_EQ(body["error"]["details"]["field"], "agent");
  EXPECT_EQ(body["error"]["source"], "ucxi-server");
  EXPECT_EQ(body["error"]["path"], "/ucxi/v1/get");

  // The server's own address rules (wildcards, missing address) use the same details.
  EXPECT_EQ(address_error_details("address", "ucxl://any:r@p:t/*^/x", "wildcard 'any' not allowed for get"),
            (nlohmann::json{{"field", "address"},
                            {"provided_address", "ucxl://any:r@p:t/*^/x"},
                            {"parse_error", "wildcard 'any' not allowed for get"}}));
}

TEST(UcxiEnvelope, ErrorFromStatus) {
  const ErrorBody forbidden =
      error_from_status(CHORUS_E_UCXI_NOT_AUTHORISED, "no key for role architect", {}, "/ucxi/v1/get");
  EXPECT_EQ(forbidden.code, Code::kForbidden);
  EXPECT_EQ(forbidden.message, "no key for role architect");
  EXPECT_EQ(forbidden.details, nlohmann::json::object());
  ASSERT_TRUE(forbidden.cause.has_value());
  EXPECT_EQ(forbidden.cause->code, "CHORUS_E_SERVICE_SPECIFIC");
  EXPECT_EQ(forbidden.cause->message, "no key for role architect");

  const ErrorBody role = error_from_status(CHORUS_E_INVALID_ARG, "unknown role", {.field = "role"}, "/ucxi/v1/put");
  EXPECT_EQ(role.code, Code::kUnprocessable);
  EXPECT_EQ(role.details, (nlohmann::json{{"field", "role"}}));
  EXPECT_EQ(role.cause->code, "CHORUS_E_INVALID_ARG");

  // No message: the code's default, and the status's description in the cause.
  const ErrorBody timeout = error_from_status(CHORUS_E_TIMEOUT, "", {}, "/ucxi/v1/get");
  EXPECT_EQ(timeout.code, Code::kGatewayTimeout);
  EXPECT_EQ(timeout.message, "Gateway timeout");
  EXPECT_EQ(timeout.cause->code, "CHORUS_E_TIMEOUT");
  EXPECT_EQ(timeout.cause->message, "timeout");

  const ErrorBody none =
      error_from_status(CHORUS_E_NOT_FOUND, "no provider", {.field = {}, .discover = true}, "/ucxi/v1/discover");
  EXPECT_EQ(none.code, Code::kResolutionFailed);
  EXPECT_EQ(error_reply(none, fixed_stamp()).http_status, 404);
}

TEST(UcxiEnvelope, Replies) {
  const Reply ok = success_reply(Code::kSuccess, {{"a", 1}}, fixed_stamp());
  EXPECT_EQ(ok.http_status, 200);
  EXPECT_EQ(ok.request_id, "20261207-010203-0badc0de");
  EXPECT_EQ(nlohmann::json::parse(ok.body)["response"]["data"]["a"], 1);

  // 204 has no body at all; the request id still goes out (in the header).
  const Reply gone = success_reply(Code::kNoContent, {{"a", 1}}, fixed_stamp());
  EXPECT_EQ(gone.http_status, 204);
  EXPECT_TRUE(gone.body.empty());
  EXPECT_EQ(gone.request_id, "20261207-010203-0badc0de");

  // A message that is not UTF-8 (say, a peer's reason) cannot fail the answer.
  ErrorBody bad;
  bad.code = Code::kInternal;
  bad.message = "integrity: \xff\xfe";
  bad.path = "/ucxi/v1/get";
  const Reply r = error_reply(bad, fixed_stamp());
  EXPECT_EQ(r.http_status, 500);
  const auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body["error"]["code"], "UCXL-500-INTERNAL");
  EXPECT_EQ(body["error"]["message"].get<std::string>().substr(0, 11), "integrity: ");
}

}  // namespace
