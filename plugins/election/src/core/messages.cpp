#include "core/messages.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <initializer_list>
#include <vector>

#include <nlohmann/json.hpp>

namespace chorus::election {
namespace {

using nlohmann::json;

constexpr uint64_t kMaxTerm = uint64_t{1} << 53;  // the largest integer every JSON reader keeps exactly
constexpr uint64_t kMaxCounter = uint64_t{1} << 53;

constexpr std::array<const char *, kTriggerCount> kTriggerNames = {
    "heartbeat_timeout", "discovery_failure", "split_brain", "quorum_loss", "manual"};

constexpr const char *kHeartbeatType = "election.heartbeat";
constexpr const char *kPresenceType = "election.presence";
constexpr const char *kCandidacyType = "election.candidacy";
constexpr const char *kVoteType = "election.vote";

bool fail(std::string *why, std::string text) {
  if (why != nullptr) *why = std::move(text);
  return false;
}

// Exactly these members, no others (a duplicate key was refused while parsing).
bool has_exactly(const json &o, std::initializer_list<const char *> names, std::string *why) {
  for (const char *name : names)
    if (!o.contains(name)) return fail(why, std::string("missing member \"") + name + "\"");
  if (o.size() != names.size()) {
    for (const auto &item : o.items())
      if (std::none_of(names.begin(), names.end(), [&](const char *n) { return item.key() == n; }))
        return fail(why, "unexpected member \"" + item.key().substr(0, kMaxIdBytes) + "\"");
  }
  return true;
}

bool read_uint(const json &o, const char *name, uint64_t lo, uint64_t hi, uint64_t &out, std::string *why) {
  const json &v = o.at(name);
  if (!v.is_number_unsigned()) return fail(why, std::string("\"") + name + "\" is not a non-negative integer");
  const auto n = v.get<uint64_t>();
  if (n < lo || n > hi)
    return fail(why, std::string("\"") + name + "\" out of range " + std::to_string(lo) + ".." + std::to_string(hi));
  out = n;
  return true;
}

bool read_unit(const json &o, const char *name, double &out, std::string *why) {
  const json &v = o.at(name);
  if (!v.is_number()) return fail(why, std::string("\"") + name + "\" is not a number");
  const double d = v.get<double>();
  if (!std::isfinite(d) || d < 0 || d > 1) return fail(why, std::string("\"") + name + "\" is not in [0, 1]");
  out = d;
  return true;
}

// Peer ids are base58btc; any printable ASCII without spaces is accepted, so that the check against
// the signer (check_author) is the only judge of who may claim what.
bool read_id(const json &o, const char *name, bool may_be_empty, std::string &out, std::string *why) {
  const json &v = o.at(name);
  if (!v.is_string()) return fail(why, std::string("\"") + name + "\" is not a string");
  const auto &s = v.get_ref<const std::string &>();
  if (s.empty() && !may_be_empty) return fail(why, std::string("\"") + name + "\" is empty");
  if (s.size() > kMaxIdBytes) return fail(why, std::string("\"") + name + "\" is longer than 128 bytes");
  for (unsigned char ch : s)
    if (ch <= 0x20 || ch >= 0x7f) return fail(why, std::string("\"") + name + "\" has a byte outside printable ASCII");
  out = s;
  return true;
}

bool read_components(const json &o, ScoreComponents &c, std::string *why) {
  const json &v = o.at("components");
  if (!v.is_object()) return fail(why, "\"components\" is not an object");
  return has_exactly(v, {"uptime", "capabilities", "resources", "network", "experience"}, why) &&
         read_unit(v, "uptime", c.uptime, why) && read_unit(v, "capabilities", c.capabilities, why) &&
         read_unit(v, "resources", c.resources, why) && read_unit(v, "network", c.network, why) &&
         read_unit(v, "experience", c.experience, why);
}

std::optional<Message> parse_heartbeat(const json &o, std::string *why) {
  Heartbeat h;
  if (!has_exactly(o, {"type", "term", "admin", "since_unix_ms", "seq", "score"}, why) ||
      !read_uint(o, "term", 1, kMaxTerm, h.term, why) || !read_id(o, "admin", false, h.admin, why) ||
      !read_uint(o, "since_unix_ms", 0, kMaxCounter, h.since_unix_ms, why) ||
      !read_uint(o, "seq", 0, kMaxCounter, h.seq, why) || !read_unit(o, "score", h.score, why))
    return std::nullopt;
  return h;
}

// A presence may carry term 0: a node that has never seen a term still has to be heard, or no
// quorum would ever be heard at first start.
std::optional<Message> parse_presence(const json &o, std::string *why) {
  Presence p;
  if (!has_exactly(o, {"type", "term", "member", "admin", "score"}, why) ||
      !read_uint(o, "term", 0, kMaxTerm, p.term, why) || !read_id(o, "member", false, p.member, why) ||
      !read_id(o, "admin", true, p.admin, why) || !read_unit(o, "score", p.score, why))
    return std::nullopt;
  return p;
}

std::optional<Message> parse_candidacy(const json &o, std::string *why) {
  Candidacy c;
  if (!has_exactly(o, {"type", "term", "candidate", "trigger", "score", "components"}, why) ||
      !read_uint(o, "term", 1, kMaxTerm, c.term, why) || !read_id(o, "candidate", false, c.candidate, why))
    return std::nullopt;
  const json &t = o.at("trigger");
  if (!t.is_string()) return fail(why, "\"trigger\" is not a string"), std::nullopt;
  auto trigger = trigger_from_name(t.get_ref<const std::string &>());
  if (!trigger) return fail(why, "unknown trigger"), std::nullopt;
  c.trigger = *trigger;
  if (!read_unit(o, "score", c.score, why) || !read_components(o, c.components, why)) return std::nullopt;
  return c;
}

std::optional<Message> parse_vote(const json &o, std::string *why) {
  Vote v;
  if (!has_exactly(o, {"type", "term", "voter", "candidate"}, why) || !read_uint(o, "term", 1, kMaxTerm, v.term, why) ||
      !read_id(o, "voter", false, v.voter, why) || !read_id(o, "candidate", false, v.candidate, why))
    return std::nullopt;
  return v;
}

}  // namespace

const char *trigger_name(Trigger t) {
  const auto i = static_cast<size_t>(t);
  return i < kTriggerNames.size() ? kTriggerNames[i] : "";
}

std::optional<Trigger> trigger_from_name(std::string_view name) {
  for (size_t i = 0; i < kTriggerNames.size(); ++i)
    if (name == kTriggerNames[i]) return static_cast<Trigger>(i);
  return std::nullopt;
}

std::optional<Message> parse_message(std::string_view text, std::string *why) {
  if (text.size() > kMaxMessageBytes) return fail(why, "message larger than 4096 bytes"), std::nullopt;
  // A duplicate key would let two readers of one message see different values; refuse it while
  // parsing (nlohmann keeps the last one silently). One list of keys per open object.
  std::vector<std::vector<std::string>> open_objects;
  bool duplicate = false;
  const json::parser_callback_t track_keys = [&](int, json::parse_event_t event, json &parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case json::parse_event_t::key:
        if (!open_objects.empty() && parsed.is_string()) {
          auto &keys = open_objects.back();
          const auto &key = parsed.get_ref<const std::string &>();
          if (std::find(keys.begin(), keys.end(), key) != keys.end()) duplicate = true;
          else keys.push_back(key);
        }
        break;
      default:
        break;
    }
    return true;
  };
  const json o = json::parse(text.begin(), text.end(), track_keys, /*allow_exceptions=*/false);
  if (o.is_discarded()) return fail(why, "not JSON"), std::nullopt;
  if (duplicate) return fail(why, "duplicate member"), std::nullopt;
  if (!o.is_object()) return fail(why, "not a JSON object"), std::nullopt;
  const auto type = o.find("type");
  if (type == o.end() || !type->is_string()) return fail(why, "no \"type\" string"), std::nullopt;
  const auto &name = type->get_ref<const std::string &>();
  if (name == kHeartbeatType) return parse_heartbeat(o, why);
  if (name == kPresenceType) return parse_presence(o, why);
  if (name == kCandidacyType) return parse_candidacy(o, why);
  if (name == kVoteType) return parse_vote(o, why);
  return fail(why, "unknown type"), std::nullopt;
}

std::string to_json(const Message &m) {
  // ordered_json keeps the documented member order on the wire.
  nlohmann::ordered_json j;
  std::visit(
      [&](const auto &msg) {
        using T = std::decay_t<decltype(msg)>;
        if constexpr (std::is_same_v<T, Heartbeat>) {
          j["type"] = kHeartbeatType;
          j["term"] = msg.term;
          j["admin"] = msg.admin;
          j["since_unix_ms"] = msg.since_unix_ms;
          j["seq"] = msg.seq;
          j["score"] = msg.score;
        } else if constexpr (std::is_same_v<T, Presence>) {
          j["type"] = kPresenceType;
          j["term"] = msg.term;
          j["member"] = msg.member;
          j["admin"] = msg.admin;
          j["score"] = msg.score;
        } else if constexpr (std::is_same_v<T, Candidacy>) {
          j["type"] = kCandidacyType;
          j["term"] = msg.term;
          j["candidate"] = msg.candidate;
          j["trigger"] = trigger_name(msg.trigger);
          j["score"] = msg.score;
          nlohmann::ordered_json c;
          c["uptime"] = msg.components.uptime;
          c["capabilities"] = msg.components.capabilities;
          c["resources"] = msg.components.resources;
          c["network"] = msg.components.network;
          c["experience"] = msg.components.experience;
          j["components"] = std::move(c);
        } else {
          j["type"] = kVoteType;
          j["term"] = msg.term;
          j["voter"] = msg.voter;
          j["candidate"] = msg.candidate;
        }
      },
      m);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

const char *topic_of(const Message &m) {
  return std::holds_alternative<Heartbeat>(m) || std::holds_alternative<Presence>(m) ? kHeartbeatTopic
                                                                                     : kElectionTopic;
}

uint64_t term_of(const Message &m) {
  return std::visit([](const auto &msg) { return msg.term; }, m);
}

const std::string &author_of(const Message &m) {
  return std::visit(
      [](const auto &msg) -> const std::string & {
        using T = std::decay_t<decltype(msg)>;
        if constexpr (std::is_same_v<T, Heartbeat>) return msg.admin;
        else if constexpr (std::is_same_v<T, Presence>) return msg.member;
        else if constexpr (std::is_same_v<T, Candidacy>) return msg.candidate;
        else return msg.voter;
      },
      m);
}

}  // namespace chorus::election
