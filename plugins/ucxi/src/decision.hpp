// Decision records (sans I/O): the schema, its strict validation, the record's UCXL address and the
// announcement published for it. See README.md, "Decisions".
//
//   {"id": "<1..128 of [A-Za-z0-9_.-]>", "title": "<1..256 bytes>", "summary": "<0..8192 bytes>",
//    "outcome": "approval" | "blocker" | "structural_change",
//    "author": {"agent": "<component>", "role": "<component>"}, "project": "<component>", "task": "<component>",
//    "citations": ["<ucxl address with a *~N temporal segment>", ...] (0..64),
//    "created": "<RFC 3339 UTC>", "updated"?: "<RFC 3339 UTC>", "metadata"?: {<= 16 KiB as JSON, nested <= 32 deep}}
//
// Unknown members are refused. A component is [A-Za-z0-9_-]{1,128}, never the wildcard "any" (the
// record is stored at one concrete address). A citation must name one immutable version: it parses,
// has no wildcard and its temporal segment is *~N.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ucxl/address.hpp"

namespace chorus::ucxi {

inline constexpr size_t kDecisionIdMaxBytes = 128;
inline constexpr size_t kDecisionTitleMaxBytes = 256;
inline constexpr size_t kDecisionSummaryMaxBytes = 8192;
inline constexpr size_t kDecisionComponentMaxBytes = 128;
inline constexpr size_t kDecisionMaxCitations = 64;
inline constexpr size_t kDecisionMetadataMaxBytes = 16 * 1024;  // the metadata object serialised compactly
inline constexpr size_t kDecisionMetadataMaxDepth = 32;         // nesting of arrays / objects, metadata itself 1
// Longest decision record text the parser looks at (the record's members bounded above, with room
// for JSON escapes).
inline constexpr size_t kDecisionMaxTextBytes = 256 * 1024;

enum class DecisionOutcome { kApproval, kBlocker, kStructuralChange };

// "approval", "blocker", "structural_change".
std::string_view outcome_text(DecisionOutcome o);
std::optional<DecisionOutcome> outcome_from_text(std::string_view text);

struct Decision {
  std::string id;
  std::string title;
  std::string summary;
  DecisionOutcome outcome = DecisionOutcome::kApproval;
  std::string author_agent;
  std::string author_role;
  std::string project;
  std::string task;
  std::vector<ucxl::Address> citations;  // each concrete, temporal *~N
  std::string created;                   // RFC 3339 UTC, as given
  std::optional<std::string> updated;    // RFC 3339 UTC, as given
  std::optional<nlohmann::json> metadata;  // an object

  bool operator==(const Decision &) const = default;
};

// Validates j against the schema. On failure returns nullopt with *field naming the member that is
// wrong ("id", "author.role", "citations[2]", "metadata", a member that is not part of the schema,
// or "decision" when j is not an object) and *why saying how (either pointer may be null).
std::optional<Decision> parse_decision(const nlohmann::json &j, std::string *field, std::string *why);
// The same from JSON text (at most kDecisionMaxTextBytes; text that is not JSON fails with field
// "decision").
std::optional<Decision> parse_decision_text(std::string_view text, std::string *field, std::string *why);

// The record as JSON (the schema above; "updated" and "metadata" only when set). parse_decision of
// it gives the same Decision.
nlohmann::json to_json(const Decision &d);

// Where the record is stored: ucxl://<author.agent>:<author.role>@<project>:<task>/*^/decisions/<id>.json
ucxl::Address decision_address(const Decision &d);

// The announcement's type on CHORUS/coordination/v1.
inline constexpr std::string_view kDecisionPublishedType = "decision_published";
// Its data: {"address": versioned_address (the *~N address it was stored at), "id", "outcome",
// "sha256", "author": {"agent","role"}}.
nlohmann::json decision_announcement(const Decision &d, std::string_view versioned_address, std::string_view sha256);

// True when text is an RFC 3339 date-time in UTC: "YYYY-MM-DDTHH:MM:SS[.fraction]Z" (the 'T' and 'Z'
// in either case), every field in range (seconds up to 60 for a leap second), the day valid for the
// month and year.
bool is_rfc3339_utc(std::string_view text);

}  // namespace chorus::ucxi
