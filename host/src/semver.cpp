// Semantic versions (semver 2.0 precedence) and the npm/cargo-style range subset plugins use to
// declare what they require. Ranges are compiled once into plain comparator lists, so matching is
// a few integer comparisons; all the grammar's special cases live in expand_term().
#include "semver.hpp"

#include <algorithm>
#include <cctype>
#include <limits>

namespace chorus::host {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_ident_char(char c) { return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-'; }
bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }
bool is_op_char(char c) { return c == '<' || c == '>' || c == '=' || c == '^' || c == '~'; }
bool is_wildcard(std::string_view s) { return s == "x" || s == "X" || s == "*"; }

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_digit);
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  for (;;) {
    size_t pos = s.find(sep);
    parts.push_back(s.substr(0, pos));
    if (pos == std::string_view::npos) return parts;
    s.remove_prefix(pos + 1);
  }
}

std::string quote(std::string_view s) { return "'" + std::string(s) + "'"; }

// A non-negative decimal without leading zeros that fits in 32 bits. Leading zeros are refused
// because semver forbids them and "1.02" is far more likely a typo than a meaningful version.
bool parse_number(std::string_view s, uint32_t *out, std::string *why) {
  if (s.empty()) { *why = "missing number"; return false; }
  if (!all_digits(s)) { *why = quote(s) + " is not a number"; return false; }
  if (s.size() > 1 && s[0] == '0') { *why = "leading zero in " + quote(s); return false; }
  uint64_t value = 0;
  for (char c : s) {
    value = value * 10 + static_cast<uint64_t>(c - '0');
    if (value > std::numeric_limits<uint32_t>::max()) { *why = quote(s) + " is too large"; return false; }
  }
  *out = static_cast<uint32_t>(value);
  return true;
}

// Dot-separated, non-empty [0-9A-Za-z-] identifiers. Numeric prerelease identifiers may not have
// leading zeros (they compare numerically, so "01" and "1" would otherwise be two spellings of one
// precedence); build identifiers may, since build metadata never takes part in comparisons.
bool check_identifiers(std::string_view s, bool prerelease, std::string *why) {
  const char *what = prerelease ? "prerelease" : "build";
  for (std::string_view id : split(s, '.')) {
    if (id.empty()) { *why = std::string("empty ") + what + " identifier"; return false; }
    if (!std::all_of(id.begin(), id.end(), is_ident_char)) {
      *why = std::string("bad ") + what + " identifier " + quote(id);
      return false;
    }
    if (prerelease && all_digits(id) && id.size() > 1 && id[0] == '0') {
      *why = "leading zero in prerelease identifier " + quote(id);
      return false;
    }
  }
  return true;
}

// A version that may be partial ("1", "1.2") or, when wildcards are allowed, end in wildcards
// ("1.x", "1.2.*", "x"). `numbers` counts the leading components given as numbers; the rest of
// `v` is zero.
struct Partial {
  int numbers = 0;
  Version v;
};

bool parse_partial(std::string_view text, bool allow_wildcards, Partial *out, std::string *why) {
  std::string_view core = text;
  bool has_suffix = false;
  if (size_t plus = core.find('+'); plus != std::string_view::npos) {
    if (!check_identifiers(core.substr(plus + 1), false, why)) return false;
    core = core.substr(0, plus);
    has_suffix = true;
  }
  std::string_view prerelease;
  if (size_t dash = core.find('-'); dash != std::string_view::npos) {
    prerelease = core.substr(dash + 1);
    if (!check_identifiers(prerelease, true, why)) return false;
    core = core.substr(0, dash);
    has_suffix = true;
  }

  std::vector<std::string_view> parts = split(core, '.');
  if (parts.size() > 3) { *why = "more than three numbers"; return false; }
  Partial p;
  uint32_t *fields[3] = {&p.v.major, &p.v.minor, &p.v.patch};
  bool wildcard_seen = false;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (allow_wildcards && is_wildcard(parts[i])) {
      wildcard_seen = true;
      continue;
    }
    if (wildcard_seen) { *why = "only wildcards may follow a wildcard"; return false; }
    if (!parse_number(parts[i], fields[i], why)) return false;
    ++p.numbers;
  }
  if (has_suffix && p.numbers < 3) {
    *why = "a prerelease or build suffix needs major.minor.patch";
    return false;
  }
  p.v.prerelease = std::string(prerelease);
  *out = std::move(p);
  return true;
}

// Per semver 2.0 §11: a release outranks its prereleases; identifiers compare left to right,
// numeric ones numerically and below alphanumeric ones; a longer list wins when all else ties.
int compare_prerelease(std::string_view a, std::string_view b) {
  if (a.empty() || b.empty()) return a.empty() == b.empty() ? 0 : (a.empty() ? 1 : -1);
  std::vector<std::string_view> ia = split(a, '.'), ib = split(b, '.');
  for (size_t i = 0; i < ia.size() && i < ib.size(); ++i) {
    bool na = all_digits(ia[i]), nb = all_digits(ib[i]);
    int c = 0;
    if (na && nb) {
      // Without leading zeros, the longer digit string is the larger number; this also avoids
      // overflow on identifiers longer than any integer type.
      c = ia[i].size() != ib[i].size() ? (ia[i].size() < ib[i].size() ? -1 : 1) : ia[i].compare(ib[i]);
    } else if (na != nb) {
      c = na ? -1 : 1;
    } else {
      c = ia[i].compare(ib[i]);
    }
    if (c != 0) return c < 0 ? -1 : 1;
  }
  return ia.size() == ib.size() ? 0 : (ia.size() < ib.size() ? -1 : 1);
}

// The smallest release above every version that shares `v`'s first `level` numbers (1 = major,
// 2 = major.minor, 3 = major.minor.patch): bump(1.2.3, 2) = 1.3.0. A number at its maximum carries
// into the one above, and nullopt means "no such version", i.e. the bound is +infinity.
std::optional<Version> bump(const Version &v, int level) {
  constexpr uint32_t kMax = std::numeric_limits<uint32_t>::max();
  if (level == 3 && v.patch < kMax) return Version{v.major, v.minor, v.patch + 1, ""};
  if (level >= 2 && v.minor < kMax) return Version{v.major, v.minor + 1, 0, ""};
  if (v.major < kMax) return Version{v.major + 1, 0, 0, ""};
  return std::nullopt;
}

}  // namespace

std::strong_ordering Version::operator<=>(const Version &other) const {
  int c = compare(*this, other);
  return c < 0 ? std::strong_ordering::less : c > 0 ? std::strong_ordering::greater : std::strong_ordering::equal;
}

std::optional<Version> parse_version(std::string_view text) {
  Partial p;
  std::string why;
  if (!parse_partial(text, false, &p, &why)) return std::nullopt;
  return p.v;
}

int compare(const Version &a, const Version &b) {
  if (a.major != b.major) return a.major < b.major ? -1 : 1;
  if (a.minor != b.minor) return a.minor < b.minor ? -1 : 1;
  if (a.patch != b.patch) return a.patch < b.patch ? -1 : 1;
  return compare_prerelease(a.prerelease, b.prerelease);
}

std::string to_string(const Version &v) {
  std::string s = std::to_string(v.major) + "." + std::to_string(v.minor) + "." + std::to_string(v.patch);
  if (!v.prerelease.empty()) s += "-" + v.prerelease;
  return s;
}

std::optional<VersionRange> VersionRange::parse(std::string_view text, std::string *error) {
  std::string why;
  auto fail = [&](const std::string &reason) -> std::optional<VersionRange> {
    if (error) *error = "bad range " + quote(text) + ": " + reason;
    return std::nullopt;
  };

  VersionRange range;
  range.text_ = std::string(text);
  if (std::all_of(text.begin(), text.end(), is_space)) return fail("empty range (use '*' to match any version)");

  // Split on "||" first; what remains between the bars is a whitespace-separated AND list.
  std::vector<std::string_view> alternatives;
  for (std::string_view rest = text;;) {
    size_t bars = rest.find("||");
    alternatives.push_back(rest.substr(0, bars));
    if (bars == std::string_view::npos) break;
    rest.remove_prefix(bars + 2);
  }

  for (std::string_view alt : alternatives) {
    std::vector<std::string_view> tokens;
    for (size_t i = 0; i < alt.size();) {
      if (is_space(alt[i])) { ++i; continue; }
      size_t end = i;
      while (end < alt.size() && !is_space(alt[end])) ++end;
      tokens.push_back(alt.substr(i, end - i));
      i = end;
    }
    if (tokens.empty()) return fail("empty alternative next to '||'");

    std::vector<Comparator> comparators;
    for (size_t t = 0; t < tokens.size(); ++t) {
      std::string_view token = tokens[t];
      if (token.find('|') != std::string_view::npos) return fail("stray '|' (alternatives are separated by '||')");
      if (token == "-") return fail("hyphen ranges are not supported (write '>=A <=B')");

      // The operator: the longest of >= <= > < = ^ ~ that prefixes the token.
      std::string_view op;
      for (std::string_view candidate : {">=", "<=", ">", "<", "=", "^", "~"}) {
        if (token.substr(0, candidate.size()) == candidate) { op = candidate; break; }
      }
      std::string_view operand = token.substr(op.size());
      if (!op.empty() && operand.empty()) {
        // npm allows ">= 1.2": the version is the next token. Never take a token that starts with
        // another operator, so ">= <2" reports the missing version rather than a confusing one.
        if (t + 1 < tokens.size() && !is_op_char(tokens[t + 1][0])) operand = tokens[++t];
        else return fail("expected a version after " + quote(op));
      }
      if (!op.empty() && is_op_char(operand[0])) return fail("expected a version after " + quote(op) + ", got " + quote(operand));

      Partial p;
      if (!parse_partial(operand, true, &p, &why)) return fail(quote(operand) + " is not a version (" + why + ")");
      expand_term(op, p.numbers, p.v, &comparators);
    }
    range.alternatives_.push_back(std::move(comparators));
  }
  return range;
}

// Translates one term into comparators; `numbers` says how much of `lo` was written (0 = a bare
// wildcard). The partial-version rules follow npm, so a range means here what it means there.
void VersionRange::expand_term(std::string_view op, int numbers, const Version &lo, std::vector<Comparator> *out) {
  using Op = Comparator::Op;
  // 0.0.0-0 is the lowest version there is, so "< 0.0.0-0" is a comparator nothing satisfies.
  auto never = [&] { out->push_back({Op::kLt, Version{0, 0, 0, "0"}}); };
  // Upper bound "below everything sharing lo's first `level` numbers"; none when that is infinite.
  auto below = [&](int level) {
    if (auto hi = bump(lo, level)) out->push_back({Op::kLt, *hi});
  };

  if (numbers == 0) {  // "*", "x", ">=*", "^x", ...: anything, except nothing is above/below "any"
    if (op == ">" || op == "<") never();
    return;
  }
  if (op.empty() || op == "=") {
    if (numbers == 3) {
      out->push_back({Op::kEq, lo});
    } else {
      out->push_back({Op::kGe, lo});
      below(numbers);
    }
  } else if (op == ">=") {
    out->push_back({Op::kGe, lo});
  } else if (op == ">") {
    if (numbers == 3) {
      out->push_back({Op::kGt, lo});
    } else if (auto hi = bump(lo, numbers)) {  // ">1.2" = above every 1.2.x
      out->push_back({Op::kGe, *hi});
    } else {
      never();
    }
  } else if (op == "<") {
    out->push_back({Op::kLt, lo});
  } else if (op == "<=") {
    if (numbers == 3) out->push_back({Op::kLe, lo});
    else below(numbers);  // "<=1.2" includes every 1.2.x
  } else if (op == "~") {  // patch-level changes: ~1.2.3 and ~1.2 stay in 1.2, ~1 stays in 1
    out->push_back({Op::kGe, lo});
    below(numbers == 1 ? 1 : 2);
  } else {  // "^": changes that keep the leftmost non-zero number written
    out->push_back({Op::kGe, lo});
    int level = (lo.major > 0 || numbers == 1) ? 1 : (lo.minor > 0 || numbers == 2) ? 2 : 3;
    below(level);
  }
}

bool VersionRange::matches(const Version &v) const {
  for (const std::vector<Comparator> &alternative : alternatives_) {
    bool ok = true;
    bool prerelease_allowed = v.prerelease.empty();
    for (const Comparator &c : alternative) {
      int cmp = compare(v, c.v);
      switch (c.op) {
        case Comparator::kEq: ok = cmp == 0; break;
        case Comparator::kLt: ok = cmp < 0; break;
        case Comparator::kLe: ok = cmp <= 0; break;
        case Comparator::kGt: ok = cmp > 0; break;
        case Comparator::kGe: ok = cmp >= 0; break;
      }
      if (!ok) break;
      // A prerelease is only wanted by someone who named a prerelease of that very release;
      // otherwise ">=1.0.0" would silently pull in 2.0.0-alpha.
      if (!c.v.prerelease.empty() && c.v.major == v.major && c.v.minor == v.minor && c.v.patch == v.patch) {
        prerelease_allowed = true;
      }
    }
    if (ok && prerelease_allowed) return true;
  }
  return false;
}

}  // namespace chorus::host
