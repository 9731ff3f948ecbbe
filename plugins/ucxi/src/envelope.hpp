// UCXL response codes and the envelopes the UCXI server answers with (sans I/O). See README.md,
// "Envelopes and codes".
//
//   success  {"response":{"code","message","data","details","request_id","timestamp"}}
//   error    {"error":{"code","message","details","source":"ucxi-server","path","request_id","timestamp",
//                      "cause"?}}
//
// Every answer carries a request id "YYYYMMDD-HHMMSS-<8 lowercase hex>" (UTC; the hex from a CSPRNG)
// both in the envelope and in the X-Request-Id header. 204 answers have no body at all.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <chorus/plugin.h>
#include <nlohmann/json.hpp>

#include "ucxl/address.hpp"

namespace chorus::ucxi {

enum class Code {
  kSuccess,               // UCXL-200-SUCCESS 200
  kCreated,               // UCXL-201-CREATED 201
  kAccepted,              // UCXL-202-ACCEPTED 202
  kNoContent,             // UCXL-204-NO_CONTENT 204
  kBadRequest,            // UCXL-400-BAD_REQUEST 400
  kInvalidAddress,        // UCXL-400-INVALID_ADDRESS 400
  kInvalidPayload,        // UCXL-400-INVALID_PAYLOAD 400
  kTemporalInvalid,       // UCXL-400-TEMPORAL_INVALID 400
  kForbidden,             // UCXL-403-FORBIDDEN 403
  kNotFound,              // UCXL-404-NOT_FOUND 404
  kResolutionFailed,      // UCXL-404-RESOLUTION_FAILED 404
  kMethodNotAllowed,      // UCXL-405-METHOD_NOT_ALLOWED 405
  kConflict,              // UCXL-409-CONFLICT 409
  kPayloadTooLarge,       // UCXL-413-PAYLOAD_TOO_LARGE 413
  kUnsupportedMediaType,  // UCXL-415-UNSUPPORTED_MEDIA_TYPE 415
  kUnprocessable,         // UCXL-422-UNPROCESSABLE 422
  kInternal,              // UCXL-500-INTERNAL 500
  kNotImplemented,        // UCXL-501-NOT_IMPLEMENTED 501
  kServiceUnavailable,    // UCXL-503-SERVICE_UNAVAILABLE 503
  kGatewayTimeout,        // UCXL-504-GATEWAY_TIMEOUT 504
};

// One row of the code table.
struct CodeInfo {
  Code code;
  std::string_view text;             // "UCXL-404-NOT_FOUND"
  int http_status;                   // 404
  std::string_view default_message;  // "Not found"
};

// The whole table, in the enum's order.
std::span<const CodeInfo> all_codes();
const CodeInfo &code_info(Code c);
inline std::string_view code_text(Code c) { return code_info(c).text; }
inline int http_status(Code c) { return code_info(c).http_status; }
inline std::string_view default_message(Code c) { return code_info(c).default_message; }
// The code whose text is `text` ("UCXL-404-NOT_FOUND"), or nullopt.
std::optional<Code> code_from_text(std::string_view text);

// What an operation was doing when it failed, for the status -> code mapping.
struct StatusContext {
  std::string_view field;  // the failing field for CHORUS_E_INVALID_ARG ("address", "role", "content", ...)
  bool discover = false;   // true for discover: NOT_FOUND means no provider -> RESOLUTION_FAILED
};

// Maps a chorus_status to the UCXL code the server answers with:
//   CHORUS_OK -> SUCCESS; INVALID_ARG -> INVALID_ADDRESS (field "address"), UNPROCESSABLE (field
//   "role"), INVALID_PAYLOAD (any other field, or none); TOO_LARGE -> PAYLOAD_TOO_LARGE; NOT_FOUND ->
//   NOT_FOUND (RESOLUTION_FAILED for discover); UCXI_TEMPORAL -> TEMPORAL_INVALID;
//   UCXI_NOT_AUTHORISED -> FORBIDDEN; TIMEOUT -> GATEWAY_TIMEOUT; UNAVAILABLE, CANCELLED ->
//   SERVICE_UNAVAILABLE; anything else -> INTERNAL. (ACCEPTED, BAD_REQUEST, METHOD_NOT_ALLOWED,
//   CONFLICT, UNSUPPORTED_MEDIA_TYPE and NOT_IMPLEMENTED come from the HTTP layer's own checks.)
Code code_for_status(chorus_status status, const StatusContext &ctx = {});

// ---- request ids and timestamps

// "YYYYMMDD-HHMMSS-<8 lowercase hex>" for the UTC second of unix_ms, the hex being `random`.
std::string format_request_id(int64_t unix_ms, uint32_t random);
// A fresh id: the current time and 32 bits from libsodium's CSPRNG (randombytes).
std::string new_request_id();
// True when text has the request id's shape (digits, dashes and lowercase hex in the right places).
bool is_request_id(std::string_view text);

// The request id and time of one answer, fixed once per request so the header, the envelope and the
// logs agree.
struct Stamp {
  std::string request_id;
  int64_t unix_ms = 0;
  static Stamp now();  // new_request_id() at the current time
};

// ---- envelopes

// A nested error that caused this one (e.g. the DHT's): {"code","message"}.
struct Cause {
  std::string code;
  std::string message;
};

struct ErrorBody {
  Code code = Code::kInternal;
  std::string message;                              // "" -> the code's default message
  nlohmann::json details = nlohmann::json::object();  // {} when none
  std::string path;                                 // the request path, "/ucxi/v1/get"
  std::optional<Cause> cause;
};

// {"response":{"code","message","data","details","request_id","timestamp"}}; message "" -> the
// code's default message; details {} when none.
nlohmann::json success_envelope(Code code, nlohmann::json data, const Stamp &stamp, std::string_view message = {},
                                nlohmann::json details = nlohmann::json::object());
// {"error":{"code","message","details","source":"ucxi-server","path","request_id","timestamp","cause"?}}.
nlohmann::json error_envelope(const ErrorBody &e, const Stamp &stamp);

// details of an address error: {"field","provided_address","parse_error"}.
nlohmann::json address_error_details(std::string_view field, std::string_view provided_address,
                                     std::string_view parse_error);
// INVALID_ADDRESS for an address that did not parse: message e.what() (CHORUS's format), details
// {"field": e.field, "provided_address": e.raw, "parse_error": e.message}.
ErrorBody address_error(const ucxl::ParseError &e, std::string path);
// The error for a failed operation: the code from code_for_status, the message given (or the code's
// default), details {"field": field} when ctx.field is set, and the chorus status as the cause
// ({"code": "CHORUS_E_...", "message": message}) unless the status is CHORUS_OK.
ErrorBody error_from_status(chorus_status status, std::string message, const StatusContext &ctx, std::string path);

// What the HTTP layer sends: the status, the body (the envelope's text; empty for 204, which has no
// body) and the value of the X-Request-Id header.
struct Reply {
  int http_status = 500;
  std::string body;
  std::string request_id;
};
Reply success_reply(Code code, nlohmann::json data, const Stamp &stamp, std::string_view message = {},
                    nlohmann::json details = nlohmann::json::object());
Reply error_reply(const ErrorBody &e, const Stamp &stamp);

}  // namespace chorus::ucxi
