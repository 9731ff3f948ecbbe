// SHHH on JSON documents: every string value is redacted as text, the string values of sensitive keys
// are replaced whole, keys and structure are kept (docs/shhh.md, "JSON").
#include <nlohmann/json.hpp>

#include "shhh/engine.hpp"

namespace chorus::shhh {

namespace {

using Json = nlohmann::ordered_json;  // keeps the members in their order: findings follow the input

void append_pointer_token(std::string* path, std::string_view token) {
  *path += '/';
  for (char c : token) {
    if (c == '~') *path += "~0";
    else if (c == '/') *path += "~1";
    else *path += c;
  }
}

struct Walker {
  const Sentinel::Impl& impl;
  std::vector<Finding>* findings;
  std::string path;

  // false: nested deeper than kMaxJsonDepth (the caller falls back to text).
  bool walk(Json& value, size_t depth) {
    if (depth > kMaxJsonDepth) return false;
    if (value.is_string()) {
      std::string& s = value.get_ref<std::string&>();
      std::string redacted = impl.redact(s, path, findings);
      s = std::move(redacted);
    } else if (value.is_object()) {
      for (auto it = value.begin(); it != value.end(); ++it) {
        const size_t mark = path.size();
        append_pointer_token(&path, it.key());
        Json& member = it.value();
        if (member.is_string() && !member.get_ref<const std::string&>().empty() &&
            impl.sensitive_keys.count(normalise_key(it.key())) > 0) {
          std::string& s = member.get_ref<std::string&>();
          if (s != kPlaceholder) {  // already redacted: not a new finding
            findings->push_back(Finding{"sensitive_key", Severity::kHigh, {"sensitive_key"}, 0, s.size(),
                                        sha256_hex(s), path});
            s = std::string(kPlaceholder);
          }
        } else if (!walk(member, depth + 1)) {
          return false;
        }
        path.resize(mark);
      }
    } else if (value.is_array()) {
      for (size_t i = 0; i < value.size(); ++i) {
        const size_t mark = path.size();
        append_pointer_token(&path, std::to_string(i));
        if (!walk(value[i], depth + 1)) return false;
        path.resize(mark);
      }
    }
    return true;
  }
};

}  // namespace

Result Sentinel::redact_json(std::string_view json, Channel channel, std::string_view source) const {
  // Fast path: with built-in rules only, a document with no trigger, no sensitive key and no escape
  // (an escape could spell either) holds nothing to find.
  const bool custom = impl_->rules.size() > impl_->builtin_count;
  if (!custom && json.find('\\') == std::string_view::npos && !may_contain_secret(json) &&
      (!impl_->sensitive_key_scan ||
       !re2::RE2::PartialMatch(re2::StringPiece(json.data(), json.size()), *impl_->sensitive_key_scan)))
    return Result{std::string(json), {}};

  Json doc = Json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return redact_text(json, channel, source);

  Result r;
  Walker walker{*impl_, &r.findings, std::string()};
  if (!walker.walk(doc, 0)) return redact_text(json, channel, source);
  if (r.findings.empty()) {
    r.text = std::string(json);
  } else {
    r.text = doc.dump(-1, ' ', false, Json::error_handler_t::replace);
    impl_->notify(channel, source, r.findings);
  }
  return r;
}

}  // namespace chorus::shhh
