// Decision records (decision.hpp): strict schema validation, the JSON form and the record's address.
#include "decision.hpp"

#include <array>
#include <utility>
#include <vector>

namespace chorus::ucxi {
namespace {

bool fail(std::string *field, std::string *why, std::string_view f, std::string w) {
  if (field != nullptr) field->assign(f);
  if (why != nullptr) *why = std::move(w);
  return false;
}

bool id_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
         c == '-';
}

bool component_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

// Valid UTF-8 (no overlong forms, no surrogates, at most U+10FFFF). Text parsed by nlohmann is
// already; a json built in code need not be.
bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // the sequence runs past the end
    for (size_t k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

// A string member: present (unless optional), a string, valid UTF-8, min..max bytes.
bool string_member(const nlohmann::json &j, const char *name, size_t min, size_t max, const std::string **out,
                   std::string *field, std::string *why) {
  const auto it = j.find(name);
  if (it == j.end()) return fail(field, why, name, std::string(name) + " is required");
  if (!it->is_string()) return fail(field, why, name, std::string(name) + " must be a string");
  const std::string &s = it->get_ref<const std::string &>();
  if (!valid_utf8(s)) return fail(field, why, name, std::string(name) + " is not valid UTF-8");
  if (s.size() < min || s.size() > max) {
    return fail(field, why, name,
                std::string(name) + " must be " + std::to_string(min) + ".." + std::to_string(max) + " bytes, not " +
                    std::to_string(s.size()));
  }
  *out = &s;
  return true;
}

bool component_member(const nlohmann::json &j, const char *name, std::string_view field_name, std::string *out,
                      std::string *field, std::string *why) {
  const auto it = j.find(name);
  if (it == j.end()) return fail(field, why, field_name, std::string(field_name) + " is required");
  if (!it->is_string()) return fail(field, why, field_name, std::string(field_name) + " must be a string");
  const std::string &s = it->get_ref<const std::string &>();
  if (s.empty() || s.size() > kDecisionComponentMaxBytes) {
    return fail(field, why, field_name,
                std::string(field_name) + " must be 1.." + std::to_string(kDecisionComponentMaxBytes) + " bytes");
  }
  for (char c : s) {
    if (!component_char(c)) {
      return fail(field, why, field_name, std::string(field_name) + " may hold only letters, digits, '_' and '-'");
    }
  }
  if (s == "any") {
    return fail(field, why, field_name,
                std::string(field_name) + " cannot be the wildcard 'any' (a decision has one concrete address)");
  }
  *out = s;
  return true;
}

bool timestamp_member(const nlohmann::json &j, const char *name, std::string *out, std::string *field,
                      std::string *why) {
  const std::string *s = nullptr;
  if (!string_member(j, name, 1, 64, &s, field, why)) return false;
  if (!is_rfc3339_utc(*s)) {
    return fail(field, why, name, std::string(name) + " must be an RFC 3339 time in UTC (\"2026-12-07T01:02:03Z\")");
  }
  *out = *s;
  return true;
}

bool digits(std::string_view s, size_t pos, size_t n, int *out) {
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

// True when j nests arrays / objects deeper than max_depth (j itself is depth 1). Iterative: the
// value is client input, and the recursive walks of nlohmann::json (dump, copy, ==) must only ever
// see bounded depth.
bool nested_deeper_than(const nlohmann::json &j, size_t max_depth) {
  std::vector<std::pair<const nlohmann::json *, size_t>> todo = {{&j, 1}};
  while (!todo.empty()) {
    const auto [v, depth] = todo.back();
    todo.pop_back();
    if (!v->is_structured()) continue;
    if (depth > max_depth) return true;
    for (const auto &child : *v) todo.emplace_back(&child, depth + 1);
  }
  return false;
}

constexpr std::array<std::string_view, 11> kMembers = {"id",    "title",     "summary", "outcome",  "author", "project",
                                                       "task",  "citations", "created", "updated",  "metadata"};

}  // namespace

std::string_view outcome_text(DecisionOutcome o) {
  switch (o) {
    case DecisionOutcome::kApproval: return "approval";
    case DecisionOutcome::kBlocker: return "blocker";
    case DecisionOutcome::kStructuralChange: return "structural_change";
  }
  return "approval";
}

std::optional<DecisionOutcome> outcome_from_text(std::string_view text) {
  if (text == "approval") return DecisionOutcome::kApproval;
  if (text == "blocker") return DecisionOutcome::kBlocker;
  if (text == "structural_change") return DecisionOutcome::kStructuralChange;
  return std::nullopt;
}

bool is_rfc3339_utc(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.f+]Z
  if (s.size() < 20) return false;
  int year, month, day, hour, minute, second;
  if (!digits(s, 0, 4, &year) || s[4] != '-' || !digits(s, 5, 2, &month) || s[7] != '-' || !digits(s, 8, 2, &day) ||
      (s[10] != 'T' && s[10] != 't') || !digits(s, 11, 2, &hour) || s[13] != ':' || !digits(s, 14, 2, &minute) ||
      s[16] != ':' || !digits(s, 17, 2, &second)) {
    return false;
  }
  size_t i = 19;
  if (s[i] == '.') {
    ++i;
    const size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start) return false;
  }
  if (i + 1 != s.size() || (s[i] != 'Z' && s[i] != 'z')) return false;
  if (month < 1 || month > 12 || hour > 23 || minute > 59 || second > 60) return false;
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const int days = kDays[month - 1] + (month == 2 && leap ? 1 : 0);
  return day >= 1 && day <= days;
}

std::optional<Decision> parse_decision(const nlohmann::json &j, std::string *field, std::string *why) {
  if (!j.is_object()) {
    fail(field, why, "decision", "a decision is a JSON object");
    return std::nullopt;
  }
  for (const auto &member : j.items()) {
    bool known = false;
    for (std::string_view m : kMembers) known = known || member.key() == m;
    if (!known) {
      // The name may be anything the client sent: repeat only a bounded, UTF-8-safe part of it.
      const std::string &key = member.key();
      const std::string name = !key.empty() && key.size() <= 64 && valid_utf8(key) ? key : "<member>";
      fail(field, why, name, "unknown member '" + name + "'");
      return std::nullopt;
    }
  }

  Decision d;
  const std::string *s = nullptr;
  if (!string_member(j, "id", 1, kDecisionIdMaxBytes, &s, field, why)) return std::nullopt;
  for (char c : *s) {
    if (!id_char(c)) {
      fail(field, why, "id", "id may hold only letters, digits, '_', '.' and '-'");
      return std::nullopt;
    }
  }
  d.id = *s;
  if (!string_member(j, "title", 1, kDecisionTitleMaxBytes, &s, field, why)) return std::nullopt;
  d.title = *s;
  if (!string_member(j, "summary", 0, kDecisionSummaryMaxBytes, &s, field, why)) return std::nullopt;
  d.summary = *s;
  if (!string_member(j, "outcome", 1, 64, &s, field, why)) return std::nullopt;
  const auto outcome = outcome_from_text(*s);
  if (!outcome) {
    fail(field, why, "outcome", "outcome must be approval, blocker or structural_change");
    return std::nullopt;
  }
  d.outcome = *outcome;

  const auto author = j.find("author");
  if (author == j.end()) {
    fail(field, why, "author", "author is required");
    return std::nullopt;
  }
  if (!author->is_object()) {
    fail(field, why, "author", "author must be an object {\"agent\", \"role\"}");
    return std::nullopt;
  }
  for (const auto &member : author->items()) {
    if (member.key() != "agent" && member.key() != "role") {
      fail(field, why, "author", "author has only the members agent and role");
      return std::nullopt;
    }
  }
  if (!component_member(*author, "agent", "author.agent", &d.author_agent, field, why) ||
      !component_member(*author, "role", "author.role", &d.author_role, field, why) ||
      !component_member(j, "project", "project", &d.project, field, why) ||
      !component_member(j, "task", "task", &d.task, field, why)) {
    return std::nullopt;
  }

  const auto citations = j.find("citations");
  if (citations == j.end()) {
    fail(field, why, "citations", "citations is required (an empty list when none)");
    return std::nullopt;
  }
  if (!citations->is_array()) {
    fail(field, why, "citations", "citations must be a list of UCXL addresses");
    return std::nullopt;
  }
  if (citations->size() > kDecisionMaxCitations) {
    fail(field, why, "citations", "at most " + std::to_string(kDecisionMaxCitations) + " citations");
    return std::nullopt;
  }
  d.citations.reserve(citations->size());
  for (size_t i = 0; i < citations->size(); ++i) {
    const std::string name = "citations[" + std::to_string(i) + "]";
    const nlohmann::json &c = (*citations)[i];
    if (!c.is_string()) {
      fail(field, why, name, name + " must be a string");
      return std::nullopt;
    }
    ucxl::ParseError pe;
    auto a = ucxl::parse(c.get_ref<const std::string &>(), &pe);
    if (!a) {
      fail(field, why, name, pe.what());
      return std::nullopt;
    }
    if (a->temporal.type != ucxl::TemporalType::kSpecific) {
      fail(field, why, name, name + " must cite one version (*~N), not '" + a->temporal.text() + "'");
      return std::nullopt;
    }
    if (a->has_wildcards()) {
      fail(field, why, name, name + " must cite one address, without the wildcard 'any'");
      return std::nullopt;
    }
    d.citations.push_back(std::move(*a));
  }

  if (!timestamp_member(j, "created", &d.created, field, why)) return std::nullopt;
  if (j.contains("updated")) {
    std::string updated;
    if (!timestamp_member(j, "updated", &updated, field, why)) return std::nullopt;
    d.updated = std::move(updated);
  }
  const auto metadata = j.find("metadata");
  if (metadata != j.end()) {
    if (!metadata->is_object()) {
      fail(field, why, "metadata", "metadata must be an object");
      return std::nullopt;
    }
    if (nested_deeper_than(*metadata, kDecisionMetadataMaxDepth)) {
      fail(field, why, "metadata",
           "metadata nests deeper than " + std::to_string(kDecisionMetadataMaxDepth) + " levels");
      return std::nullopt;
    }
    // Measured as the compact text it is stored as; strings that are not UTF-8 are refused.
    std::string text;
    try {
      text = metadata->dump();
    } catch (const nlohmann::json::exception &) {
      fail(field, why, "metadata", "metadata holds a string that is not valid UTF-8");
      return std::nullopt;
    }
    if (text.size() > kDecisionMetadataMaxBytes) {
      fail(field, why, "metadata",
           "metadata is " + std::to_string(text.size()) + " bytes as JSON (at most " +
               std::to_string(kDecisionMetadataMaxBytes) + ")");
      return std::nullopt;
    }
    d.metadata = *metadata;
  }
  return d;
}

std::optional<Decision> parse_decision_text(std::string_view text, std::string *field, std::string *why) {
  if (text.size() > kDecisionMaxTextBytes) {
    fail(field, why, "decision",
         "a decision record is at most " + std::to_string(kDecisionMaxTextBytes) + " bytes, not " +
             std::to_string(text.size()));
    return std::nullopt;
  }
  const nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    fail(field, why, "decision", "the body is not valid JSON");
    return std::nullopt;
  }
  return parse_decision(j, field, why);
}

nlohmann::json to_json(const Decision &d) {
  nlohmann::json citations = nlohmann::json::array();
  for (const ucxl::Address &a : d.citations) citations.push_back(a.to_string());
  nlohmann::json j = {{"id", d.id},
                      {"title", d.title},
                      {"summary", d.summary},
                      {"outcome", outcome_text(d.outcome)},
                      {"author", {{"agent", d.author_agent}, {"role", d.author_role}}},
                      {"project", d.project},
                      {"task", d.task},
                      {"citations", std::move(citations)},
                      {"created", d.created}};
  if (d.updated) j["updated"] = *d.updated;
  if (d.metadata) j["metadata"] = *d.metadata;
  return j;
}

ucxl::Address decision_address(const Decision &d) {
  ucxl::Address a;
  a.agent = d.author_agent;
  a.role = d.author_role;
  a.project = d.project;
  a.task = d.task;
  a.temporal = ucxl::TemporalSegment{ucxl::TemporalType::kLatest, ucxl::Direction::kNone, 0};
  a.path = "decisions/" + d.id + ".json";
  return a;
}

nlohmann::json decision_announcement(const Decision &d, std::string_view versioned_address, std::string_view sha256) {
  return nlohmann::json{{"address", versioned_address},
                        {"id", d.id},
                        {"outcome", outcome_text(d.outcome)},
                        {"sha256", sha256},
                        {"author", {{"agent", d.author_agent}, {"role", d.author_role}}}};
}

}  // namespace chorus::ucxi
