// UCXL codes and envelopes (envelope.hpp).
#include "envelope.hpp"

#include <sodium.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>

#include <chorus/services/ucxi_v1.h>
#include <chorus/status.h>
#include <chorus/time_text.hpp>

namespace chorus::ucxi {
namespace {

constexpr std::array<CodeInfo, 20> kCodes = {{
    {Code::kSuccess, "UCXL-200-SUCCESS", 200, "Request completed successfully"},
    {Code::kCreated, "UCXL-201-CREATED", 201, "Resource created successfully"},
    {Code::kAccepted, "UCXL-202-ACCEPTED", 202, "Request accepted for processing"},
    {Code::kNoContent, "UCXL-204-NO_CONTENT", 204, "Request completed with no content"},
    {Code::kBadRequest, "UCXL-400-BAD_REQUEST", 400, "Bad request"},
    {Code::kInvalidAddress, "UCXL-400-INVALID_ADDRESS", 400, "Invalid UCXL address"},
    {Code::kInvalidPayload, "UCXL-400-INVALID_PAYLOAD", 400, "Invalid payload"},
    {Code::kTemporalInvalid, "UCXL-400-TEMPORAL_INVALID", 400, "Invalid temporal segment"},
    {Code::kForbidden, "UCXL-403-FORBIDDEN", 403, "Forbidden"},
    {Code::kNotFound, "UCXL-404-NOT_FOUND", 404, "Resource not found"},
    {Code::kResolutionFailed, "UCXL-404-RESOLUTION_FAILED", 404, "Address resolution failed"},
    {Code::kMethodNotAllowed, "UCXL-405-METHOD_NOT_ALLOWED", 405, "Method not allowed"},
    {Code::kConflict, "UCXL-409-CONFLICT", 409, "Conflict"},
    {Code::kPayloadTooLarge, "UCXL-413-PAYLOAD_TOO_LARGE", 413, "Payload too large"},
    {Code::kUnsupportedMediaType, "UCXL-415-UNSUPPORTED_MEDIA_TYPE", 415, "Unsupported media type"},
    {Code::kUnprocessable, "UCXL-422-UNPROCESSABLE", 422, "Unprocessable entity"},
    {Code::kInternal, "UCXL-500-INTERNAL", 500, "Internal server error"},
    {Code::kNotImplemented, "UCXL-501-NOT_IMPLEMENTED", 501, "Not implemented"},
    {Code::kServiceUnavailable, "UCXL-503-SERVICE_UNAVAILABLE", 503, "Service unavailable"},
    {Code::kGatewayTimeout, "UCXL-504-GATEWAY_TIMEOUT", 504, "Gateway timeout"},
}};

constexpr bool table_in_enum_order() {
  for (size_t i = 0; i < kCodes.size(); ++i) {
    if (static_cast<size_t>(kCodes[i].code) != i) return false;
  }
  return true;
}
static_assert(table_in_enum_order(), "kCodes must list the codes in the enum's order");

int64_t now_unix_ms() { return unix_ms(std::chrono::system_clock::now()); }

// 32 bits from libsodium's CSPRNG. sodium_init is idempotent and thread-safe (the plugin calls it at
// start already); it only fails when the system has no entropy source at all.
uint32_t random32() { return sodium_init() < 0 ? 0 : randombytes_random(); }

std::string message_or_default(Code code, std::string_view message) {
  return message.empty() ? std::string(default_message(code)) : std::string(message);
}

}  // namespace

std::span<const CodeInfo> all_codes() { return kCodes; }

const CodeInfo &code_info(Code c) {
  const auto i = static_cast<size_t>(c);
  return i < kCodes.size() ? kCodes[i] : kCodes[static_cast<size_t>(Code::kInternal)];
}

std::optional<Code> code_from_text(std::string_view text) {
  for (const CodeInfo &info : kCodes) {
    if (info.text == text) return info.code;
  }
  return std::nullopt;
}

Code code_for_status(chorus_status status, const StatusContext &ctx) {
  switch (status) {
    case CHORUS_OK: return Code::kSuccess;
    case CHORUS_E_INVALID_ARG:
      if (ctx.field == "address") return Code::kInvalidAddress;
      if (ctx.field == "role") return Code::kUnprocessable;
      return Code::kInvalidPayload;
    case CHORUS_E_TOO_LARGE: return Code::kPayloadTooLarge;
    case CHORUS_E_NOT_FOUND: return ctx.discover ? Code::kResolutionFailed : Code::kNotFound;
    case CHORUS_E_UCXI_TEMPORAL: return Code::kTemporalInvalid;
    case CHORUS_E_UCXI_NOT_AUTHORISED: return Code::kForbidden;
    case CHORUS_E_TIMEOUT: return Code::kGatewayTimeout;
    case CHORUS_E_UNAVAILABLE:
    case CHORUS_E_CANCELLED: return Code::kServiceUnavailable;
    default: return Code::kInternal;
  }
}

std::string format_request_id(int64_t unix_ms, uint32_t random) {
  const int64_t secs = unix_ms >= 0 ? unix_ms / 1000 : (unix_ms - 999) / 1000;
  const std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  const int n = std::snprintf(buf, sizeof buf, "%04d%02d%02d-%02d%02d%02d-%08x", tm.tm_year + 1900, tm.tm_mon + 1,
                              tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<unsigned>(random));
  return std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
}

std::string new_request_id() { return format_request_id(now_unix_ms(), random32()); }

bool is_request_id(std::string_view text) {
  // YYYYMMDD-HHMMSS-xxxxxxxx
  if (text.size() != 24 || text[8] != '-' || text[15] != '-') return false;
  for (size_t i = 0; i < 15; ++i) {
    if (i == 8) continue;
    if (text[i] < '0' || text[i] > '9') return false;
  }
  for (size_t i = 16; i < 24; ++i) {
    const char c = text[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Stamp Stamp::now() {
  Stamp s;
  s.unix_ms = now_unix_ms();
  s.request_id = format_request_id(s.unix_ms, random32());
  return s;
}

nlohmann::json success_envelope(Code code, nlohmann::json data, const Stamp &stamp, std::string_view message,
                                nlohmann::json details) {
  return nlohmann::json{{"response",
                         {{"code", code_text(code)},
                          {"message", message_or_default(code, message)},
                          {"data", std::move(data)},
                          {"details", details.is_null() ? nlohmann::json::object() : std::move(details)},
                          {"request_id", stamp.request_id},
                          {"timestamp", rfc3339_utc_ms(stamp.unix_ms)}}}};
}

nlohmann::json error_envelope(const ErrorBody &e, const Stamp &stamp) {
  nlohmann::json body = {{"code", code_text(e.code)},
                         {"message", message_or_default(e.code, e.message)},
                         {"details", e.details.is_null() ? nlohmann::json::object() : e.details},
                         {"source", "ucxi-server"},
                         {"path", e.path},
                         {"request_id", stamp.request_id},
                         {"timestamp", rfc3339_utc_ms(stamp.unix_ms)}};
  if (e.cause) body["cause"] = {{"code", e.cause->code}, {"message", e.cause->message}};
  return nlohmann::json{{"error", std::move(body)}};
}

nlohmann::json address_error_details(std::string_view field, std::string_view provided_address,
                                     std::string_view parse_error) {
  return nlohmann::json{{"field", field}, {"provided_address", provided_address}, {"parse_error", parse_error}};
}

ErrorBody address_error(const ucxl::ParseError &e, std::string path) {
  ErrorBody out;
  out.code = Code::kInvalidAddress;
  out.message = e.what();
  out.details = address_error_details(e.field, e.raw, e.message);
  out.path = std::move(path);
  return out;
}

ErrorBody error_from_status(chorus_status status, std::string message, const StatusContext &ctx, std::string path) {
  ErrorBody out;
  out.code = code_for_status(status, ctx);
  out.message = message_or_default(out.code, message);
  if (!ctx.field.empty()) out.details = {{"field", ctx.field}};
  out.path = std::move(path);
  if (status != CHORUS_OK) out.cause = Cause{chorus_status_name(status), std::move(message)};
  if (out.cause && out.cause->message.empty()) out.cause->message = chorus_status_describe(status);
  return out;
}

namespace {

// Envelope text. Messages from other layers (a DHT's reason, a peer's text) may carry bytes that are
// not UTF-8; they are replaced rather than allowed to fail the answer.
std::string envelope_text(const nlohmann::json &j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

Reply success_reply(Code code, nlohmann::json data, const Stamp &stamp, std::string_view message,
                    nlohmann::json details) {
  Reply r;
  r.http_status = http_status(code);
  r.request_id = stamp.request_id;
  if (r.http_status != 204) {
    r.body = envelope_text(success_envelope(code, std::move(data), stamp, message, std::move(details)));
  }
  return r;
}

Reply error_reply(const ErrorBody &e, const Stamp &stamp) {
  Reply r;
  r.http_status = http_status(e.code);
  r.request_id = stamp.request_id;
  r.body = envelope_text(error_envelope(e, stamp));
  return r;
}

}  // namespace chorus::ucxi
