// The licence validation exchange (docs/protocols.md, "Licence validation"): the request body the
// plugin sends and the classification of what comes back. Pure functions, no I/O: the HTTP client
// (client.cpp) moves bytes, the state machine (state.cpp) decides what an answer means over time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chorus::license {

// The product name the plugin announces; the server may license products separately.
inline constexpr std::string_view kProduct = "chorus-agent";
// Longest response body the client keeps; a longer one is a protocol failure ("unreachable").
inline constexpr size_t kMaxAnswerBytes = 64 * 1024;
// Longest reason kept from the server (longer ones are cut at a UTF-8 boundary).
inline constexpr size_t kMaxReasonBytes = 512;

struct ValidationRequest {
  std::string license_id;
  std::string cluster_id;
  std::string agent_id;
  std::string version;  // the agent's version (host_info host_version)
};

// The JSON body of POST <endpoint>/v1/licenses/validate.
std::string request_body(const ValidationRequest &req);

// What one validation attempt established.
enum class Outcome {
  valid,        // 200 {"valid": true, ...} for our licence id, with an expiry
  invalid,      // the server refused the licence: 200 or 403 with {"valid": false}, or any 403
  unreachable,  // no usable answer: transport failure, timeout, any other status, malformed body
};

const char *outcome_name(Outcome o) noexcept;

struct Answer {
  Outcome outcome = Outcome::unreachable;
  int64_t expires_at_unix_ms = 0;     // valid answers only
  std::vector<std::string> features;  // valid answers only
  std::string reason;                 // invalid: the server's reason; unreachable: what went wrong
};

// Classifies one HTTP answer. http_status 0 means the request never got an HTTP answer; transport_error
// then says why. expected_license_id is the id we asked about: a "valid" answer for another id is
// malformed (unreachable), never a licence.
Answer classify_answer(int http_status, std::string_view body, std::string_view transport_error,
                       std::string_view expected_license_id);

// RFC 3339 timestamps ("2027-01-31T12:00:00Z", "...T12:00:00.250+02:00") to Unix milliseconds and
// back (UTC, "Z"). nullopt for anything else, including out-of-range fields.
std::optional<int64_t> parse_rfc3339_ms(std::string_view text);
std::string format_rfc3339_ms(int64_t unix_ms);

}  // namespace chorus::license
