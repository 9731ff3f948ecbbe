#include "wire.hpp"

#include <chorus/time_text.hpp>

#include <sodium.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

namespace chorus::backbeat {
namespace {

using json = nlohmann::json;

constexpr size_t kMaxFrameBytes = 64 * 1024;
constexpr int kMaxDepth = 16;

bool is_hex(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// Rejects absurd nesting before the JSON library sees it.
bool depth_ok(std::string_view s) noexcept {
  int depth = 0;
  bool in_str = false, esc = false;
  for (char c : s) {
    if (in_str) {
      if (esc) esc = false;
      else if (c == '\\') esc = true;
      else if (c == '"') in_str = false;
      continue;
    }
    if (c == '"') in_str = true;
    else if (c == '{' || c == '[') {
      if (++depth > kMaxDepth) return false;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return true;
}

bool fail(std::string *why, const char *msg) {
  if (why != nullptr) *why = msg;
  return false;
}

// JSON Schema "integer": a JSON integer, or a number with zero fractional part.
bool as_int64(const json &v, int64_t *out) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return false;
    *out = static_cast<int64_t>(u);
    return true;
  }
  if (v.is_number_integer()) {
    *out = v.get<int64_t>();
    return true;
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!std::isfinite(d) || d != std::floor(d) || d < -9.2e18 || d > 9.2e18) return false;
    *out = static_cast<int64_t>(d);
    return true;
  }
  return false;
}

}  // namespace

const char *phase_name(BeatPhase p) noexcept {
  switch (p) {
    case BeatPhase::plan: return "plan";
    case BeatPhase::execute: return "execute";
    case BeatPhase::review: return "review";
  }
  return "plan";
}

bool valid_cluster_id(std::string_view s) noexcept {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' || c == '-')) return false;
  return true;
}

bool valid_agent_id(std::string_view s) noexcept {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' || c == '-' || c == ':'))
      return false;
  return true;
}

std::string sanitize_agent_id(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 128)) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' || c == '-' || c == ':';
    out += ok ? c : '-';
  }
  if (out.empty()) out = "chorus-agent";
  return out;
}

bool valid_hlc(std::string_view s) noexcept {
  if (s.size() != 14 || s[4] != ':' || s[9] != ':') return false;
  for (size_t i = 0; i < s.size(); ++i)
    if (i != 4 && i != 9 && !is_hex(s[i])) return false;
  return true;
}

bool tempo_valid(double bpm) noexcept {
  if (!std::isfinite(bpm) || bpm < 0.1 || bpm > 1000) return false;
  const double tenths = bpm * 10.0;
  return std::fabs(tenths - std::round(tenths)) < 1e-6;
}

// YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM), with field ranges checked (RFC 3339 §5.6).
bool valid_rfc3339(std::string_view s) noexcept {
  auto num = [&](size_t pos, size_t n, int lo, int hi) {
    if (pos + n > s.size()) return false;
    int v = 0;
    for (size_t i = 0; i < n; ++i) {
      if (!is_digit(s[pos + i])) return false;
      v = v * 10 + (s[pos + i] - '0');
    }
    return v >= lo && v <= hi;
  };
  if (s.size() < 20 || s.size() > 64) return false;
  if (!num(0, 4, 0, 9999) || s[4] != '-' || !num(5, 2, 1, 12) || s[7] != '-' || !num(8, 2, 1, 31)) return false;
  if (s[10] != 'T' && s[10] != 't') return false;
  if (!num(11, 2, 0, 23) || s[13] != ':' || !num(14, 2, 0, 59) || s[16] != ':' || !num(17, 2, 0, 60)) return false;
  size_t i = 19;
  if (i < s.size() && s[i] == '.') {
    ++i;
    const size_t start = i;
    while (i < s.size() && is_digit(s[i])) ++i;
    if (i == start) return false;
  }
  if (i >= s.size()) return false;
  if (s[i] == 'Z' || s[i] == 'z') return i + 1 == s.size();
  if (s[i] != '+' && s[i] != '-') return false;
  return i + 6 == s.size() && num(i + 1, 2, 0, 23) && s[i + 3] == ':' && num(i + 4, 2, 0, 59);
}

std::string rfc3339(uint64_t unix_ms) { return chorus::rfc3339_utc_ms(static_cast<int64_t>(unix_ms)); }

std::string window_id_for(std::string_view cluster_id, int64_t bar) {
  std::string in(cluster_id);
  in += ':';
  in += std::to_string(bar);
  unsigned char h[16];
  crypto_generichash(h, sizeof h, reinterpret_cast<const unsigned char *>(in.data()), in.size(), nullptr, 0);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(32, '0');
  for (size_t i = 0; i < 16; ++i) {
    out[2 * i] = kHex[h[i] >> 4];
    out[2 * i + 1] = kHex[h[i] & 15];
  }
  return out;
}

std::optional<BeatFrame> parse_beat_frame(std::string_view text, std::string *why, bool *legacy) noexcept {
  if (legacy != nullptr) *legacy = false;
  try {
    if (text.size() > kMaxFrameBytes) return fail(why, "frame too large"), std::nullopt;
    if (!depth_ok(text)) return fail(why, "frame nested too deeply"), std::nullopt;
    const json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return fail(why, "not JSON"), std::nullopt;
    if (!j.is_object()) return fail(why, "not a JSON object"), std::nullopt;
    if (!j.contains("beat_index") && j.contains("bar") && j.contains("beat")) {
      int64_t bar = -1, beat = -1;
      if (as_int64(j["bar"], &bar) && as_int64(j["beat"], &beat) && bar >= 0 && beat >= 0) {
        if (legacy != nullptr) *legacy = true;
        return fail(why, "legacy {bar, beat} frame without beat_index"), std::nullopt;
      }
    }
    BeatFrame f;
    bool seen[9] = {};
    static constexpr const char *kRequired[] = {"type",  "cluster_id",  "beat_index", "downbeat", "phase",
                                                "hlc",   "deadline_at", "tempo_bpm",  "window_id"};
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string &k = it.key();
      const json &v = it.value();
      if (k == "type") {
        if (!v.is_string() || v.get_ref<const std::string &>() != "backbeat.beatframe.v1")
          return fail(why, "type must be backbeat.beatframe.v1"), std::nullopt;
        seen[0] = true;
      } else if (k == "cluster_id") {
        if (!v.is_string() || !valid_cluster_id(v.get_ref<const std::string &>()))
          return fail(why, "cluster_id invalid"), std::nullopt;
        f.cluster_id = v.get<std::string>();
        seen[1] = true;
      } else if (k == "beat_index") {
        if (!as_int64(v, &f.beat_index) || f.beat_index < 0) return fail(why, "beat_index invalid"), std::nullopt;
        seen[2] = true;
      } else if (k == "downbeat") {
        if (!v.is_boolean()) return fail(why, "downbeat must be a boolean"), std::nullopt;
        f.downbeat = v.get<bool>();
        seen[3] = true;
      } else if (k == "phase") {
        if (!v.is_string()) return fail(why, "phase invalid"), std::nullopt;
        const std::string &p = v.get_ref<const std::string &>();
        if (p == "plan") f.phase = BeatPhase::plan;
        else if (p == "execute") f.phase = BeatPhase::execute;
        else if (p == "review") f.phase = BeatPhase::review;
        else return fail(why, "phase invalid"), std::nullopt;
        seen[4] = true;
      } else if (k == "hlc") {
        if (!v.is_string() || !valid_hlc(v.get_ref<const std::string &>())) return fail(why, "hlc invalid"), std::nullopt;
        f.hlc = v.get<std::string>();
        seen[5] = true;
      } else if (k == "deadline_at") {
        if (!v.is_string() || !valid_rfc3339(v.get_ref<const std::string &>()))
          return fail(why, "deadline_at invalid"), std::nullopt;
        f.deadline_at = v.get<std::string>();
        seen[6] = true;
      } else if (k == "tempo_bpm") {
        if (!v.is_number() || !tempo_valid(v.get<double>())) return fail(why, "tempo_bpm out of range"), std::nullopt;
        f.tempo_bpm = v.get<double>();
        seen[7] = true;
      } else if (k == "window_id") {
        if (!v.is_string()) return fail(why, "window_id invalid"), std::nullopt;
        const std::string &w = v.get_ref<const std::string &>();
        if (w.size() != 32) return fail(why, "window_id invalid"), std::nullopt;
        for (char c : w)
          if (!is_hex(c)) return fail(why, "window_id invalid"), std::nullopt;
        f.window_id = w;
        seen[8] = true;
      } else if (k == "metadata") {
        if (!v.is_object()) return fail(why, "metadata must be an object"), std::nullopt;
        if (auto m = v.find("pulse_version"); m != v.end()) {
          if (!m->is_string()) return fail(why, "metadata.pulse_version invalid"), std::nullopt;
          f.pulse_version = m->get<std::string>();
        }
        if (auto m = v.find("cluster_health"); m != v.end()) {
          if (!m->is_string()) return fail(why, "metadata.cluster_health invalid"), std::nullopt;
          f.cluster_health = m->get<std::string>();
        }
        if (auto m = v.find("expected_agents"); m != v.end()) {
          if (!as_int64(*m, &f.expected_agents) || f.expected_agents < 0)
            return fail(why, "metadata.expected_agents invalid"), std::nullopt;
        }
      } else {
        return fail(why, "unknown property"), std::nullopt;
      }
    }
    for (size_t i = 0; i < 9; ++i) {
      if (!seen[i]) {
        if (why != nullptr) *why = std::string("missing ") + kRequired[i];
        return std::nullopt;
      }
    }
    return f;
  } catch (...) {
    fail(why, "unparseable frame");
    return std::nullopt;
  }
}

void append_json_string(std::string *out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (c < 0x20) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 15]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

std::string_view utf8_truncate(std::string_view s, size_t max) noexcept {
  if (s.size() <= max) return s;
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0u) == 0x80u) --n;
  return s.substr(0, n);
}

namespace {
void append_int(std::string *out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, r.ptr);
}
void append_double(std::string *out, double v) {
  char buf[32];
  if (!std::isfinite(v)) v = 0;
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  std::string_view sv(buf, static_cast<size_t>(r.ptr - buf));
  out->append(sv);
  // to_chars may give "1" for 1.0: keep it a JSON number either way (valid for "number").
}
}  // namespace

std::string serialize_beat_frame(const BeatFrame &f) {
  std::string out;
  out.reserve(320);
  out += R"({"type":"backbeat.beatframe.v1","cluster_id":)";
  append_json_string(&out, f.cluster_id);
  out += ",\"beat_index\":";
  append_int(&out, f.beat_index);
  out += f.downbeat ? ",\"downbeat\":true" : ",\"downbeat\":false";
  out += ",\"phase\":\"";
  out += phase_name(f.phase);
  out += "\",\"hlc\":";
  append_json_string(&out, f.hlc);
  out += ",\"deadline_at\":";
  append_json_string(&out, f.deadline_at);
  out += ",\"tempo_bpm\":";
  append_double(&out, std::round(f.tempo_bpm * 10.0) / 10.0);
  out += ",\"window_id\":";
  append_json_string(&out, f.window_id);
  if (!f.pulse_version.empty() || !f.cluster_health.empty() || f.expected_agents >= 0) {
    out += ",\"metadata\":{";
    bool first = true;
    auto sep = [&] {
      if (!first) out += ',';
      first = false;
    };
    if (!f.pulse_version.empty()) {
      sep();
      out += "\"pulse_version\":";
      append_json_string(&out, f.pulse_version);
    }
    if (!f.cluster_health.empty()) {
      sep();
      out += "\"cluster_health\":";
      append_json_string(&out, f.cluster_health);
    }
    if (f.expected_agents >= 0) {
      sep();
      out += "\"expected_agents\":";
      append_int(&out, f.expected_agents);
    }
    out += '}';
  }
  out += '}';
  return out;
}

void append_status_claim(std::string *out, const StatusClaim &c) {
  *out += R"({"type":"backbeat.statusclaim.v1","agent_id":)";
  append_json_string(out, c.agent_id);
  if (!c.task_id.empty()) {
    *out += ",\"task_id\":";
    append_json_string(out, c.task_id);
  }
  *out += ",\"beat_index\":";
  append_int(out, c.beat_index < 0 ? 0 : c.beat_index);
  *out += ",\"state\":\"";
  *out += c.state;
  *out += '"';
  if (c.beats_left >= 0) {
    *out += ",\"beats_left\":";
    append_int(out, c.beats_left > 1000 ? 1000 : c.beats_left);
  }
  if (c.progress >= 0) {
    *out += ",\"progress\":";
    const double p = c.progress > 1.0 ? 1.0 : c.progress;
    if (p == 0.0) *out += "0.0";
    else if (p == 1.0) *out += "1.0";
    else append_double(out, std::round(p * 10000.0) / 10000.0);
  }
  if (!c.notes.empty()) {
    *out += ",\"notes\":";
    append_json_string(out, utf8_truncate(c.notes, 256));
  }
  *out += ",\"hlc\":";
  append_json_string(out, c.hlc);
  if (!c.metadata_members.empty()) {
    *out += ",\"metadata\":{";
    *out += c.metadata_members;
    *out += '}';
  }
  *out += '}';
}

bool validate_status_claim(std::string_view text, std::string *why) noexcept {
  try {
    if (!depth_ok(text)) return fail(why, "nested too deeply");
    const json j = json::parse(text.begin(), text.end(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) return fail(why, "not a JSON object");
    static constexpr const char *kStates[] = {"idle",      "planning", "executing", "reviewing",
                                              "completed", "failed",   "blocked",   "helping"};
    static constexpr const char *kKnown[] = {"type",  "agent_id", "task_id",   "beat_index",   "state",   "beats_left",
                                             "progress", "notes", "hlc",       "resources",    "dependencies", "metadata"};
    for (auto it = j.begin(); it != j.end(); ++it) {
      bool known = false;
      for (const char *k : kKnown) known = known || it.key() == k;
      if (!known) return fail(why, "unknown property");
    }
    auto str = [&](const char *k) -> const std::string * {
      auto it = j.find(k);
      return it != j.end() && it->is_string() ? &it->get_ref<const std::string &>() : nullptr;
    };
    const std::string *type = str("type");
    if (type == nullptr || *type != "backbeat.statusclaim.v1") return fail(why, "type");
    const std::string *agent = str("agent_id");
    if (agent == nullptr || !valid_agent_id(*agent)) return fail(why, "agent_id");
    if (j.contains("task_id")) {
      const std::string *task = str("task_id");
      if (task == nullptr || !valid_agent_id(*task)) return fail(why, "task_id");
    }
    int64_t beat = 0;
    if (!j.contains("beat_index") || !as_int64(j["beat_index"], &beat) || beat < 0) return fail(why, "beat_index");
    const std::string *state = str("state");
    bool state_ok = false;
    for (const char *s : kStates) state_ok = state_ok || (state != nullptr && *state == s);
    if (!state_ok) return fail(why, "state");
    if (j.contains("beats_left")) {
      int64_t bl = 0;
      if (!as_int64(j["beats_left"], &bl) || bl < 0 || bl > 1000) return fail(why, "beats_left");
    }
    if (j.contains("progress")) {
      const json &p = j["progress"];
      if (!p.is_number() || p.get<double>() < 0.0 || p.get<double>() > 1.0) return fail(why, "progress");
    }
    if (j.contains("notes")) {
      const std::string *n = str("notes");
      if (n == nullptr || n->size() > 256 * 4) return fail(why, "notes");
      // maxLength counts characters (code points)
      size_t cps = 0;
      for (unsigned char c : *n) cps += (c & 0xC0u) != 0x80u;
      if (cps > 256) return fail(why, "notes");
    }
    const std::string *hlc = str("hlc");
    if (hlc == nullptr || !valid_hlc(*hlc)) return fail(why, "hlc");
    if (j.contains("metadata") && !j["metadata"].is_object()) return fail(why, "metadata");
    if (j.contains("resources") && !j["resources"].is_object()) return fail(why, "resources");
    if (j.contains("dependencies") && !j["dependencies"].is_array()) return fail(why, "dependencies");
    return true;
  } catch (...) {
    return fail(why, "exception");
  }
}

// ---- HLC ----

Hlc::Hlc(std::string_view node_id) {
  unsigned char h[8];
  crypto_generichash(h, sizeof h, reinterpret_cast<const unsigned char *>(node_id.data()), node_id.size(), nullptr, 0);
  node_ = static_cast<uint16_t>((h[0] << 8) | h[1]);
}

std::string Hlc::next(uint64_t unix_ms) {
  const auto pt = static_cast<uint16_t>((unix_ms / 1000) & 0xffffu);
  if (!have_ || pt != pt_) {
    // A physical time that moved (forward, or around the 16-bit wrap) resets the counter. A clock
    // step backwards within the same 16-bit window keeps the later stamp and counts up instead.
    const int diff = static_cast<int16_t>(static_cast<uint16_t>(pt - pt_));
    if (!have_ || diff > 0) {
      pt_ = pt;
      logical_ = 0;
    } else {
      ++logical_;
    }
    have_ = true;
  } else {
    ++logical_;
  }
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04x:%04x:%04x", pt_, logical_, node_);
  return std::string(buf, 14);
}

void Hlc::observe(std::string_view remote, uint64_t unix_ms) {
  if (!valid_hlc(remote)) return;
  auto hex16 = [](std::string_view s) {
    unsigned v = 0;
    std::from_chars(s.data(), s.data() + s.size(), v, 16);
    return static_cast<uint16_t>(v);
  };
  const uint16_t rpt = hex16(remote.substr(0, 4));
  const uint16_t rl = hex16(remote.substr(5, 4));
  const auto local = static_cast<uint16_t>((unix_ms / 1000) & 0xffffu);
  auto later = [](uint16_t a, uint16_t b) { return static_cast<int16_t>(static_cast<uint16_t>(a - b)) > 0; };
  uint16_t pt = have_ && later(pt_, local) ? pt_ : local;
  if (later(rpt, pt)) pt = rpt;
  uint16_t l = 0;
  if (have_ && pt == pt_ && pt == rpt) l = static_cast<uint16_t>((logical_ > rl ? logical_ : rl) + 1);
  else if (have_ && pt == pt_) l = static_cast<uint16_t>(logical_ + 1);
  else if (pt == rpt) l = static_cast<uint16_t>(rl + 1);
  pt_ = pt;
  logical_ = l;
  have_ = true;
}

}  // namespace chorus::backbeat
