// SHHH on JSON documents: every string value is redacted as text, the string values of sensitive keys
// are replaced whole, keys and structure are kept (docs/shhh.md, "JSON").
//
// The document is not built as a DOM: nlohmann's SAX parser (iterative, so any depth is fine) hands
// over the values in document order and the output is written as they come. A DOM would either
// reorder the members (nlohmann::json sorts them) or, with nlohmann::ordered_json, make parsing
// quadratic in the members of an object (its map is a vector searched on every insert: 50 000 keys
// took 8 s), which untrusted input must not be able to ask for.
#include <nlohmann/json.hpp>

#include "shhh/engine.hpp"

namespace chorus::shhh {

namespace {

void append_pointer_token(std::string* path, std::string_view token) {
  *path += '/';
  for (char c : token) {
    if (c == '~') *path += "~0";
    else if (c == '/') *path += "~1";
    else *path += c;
  }
}

// JSON string escaping; bytes >= 0x80 pass through (the parser has checked the input's UTF-8, and a
// redaction replaces whole characters).
void append_json_string(std::string* out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  *out += '"';
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\b': *out += "\\b"; break;
      case '\f': *out += "\\f"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      default:
        if (c < 0x20) {
          *out += "\\u00";
          *out += kHex[c >> 4];
          *out += kHex[c & 15];
        } else {
          *out += ch;
        }
    }
  }
  *out += '"';
}

class Redactor : public nlohmann::json_sax<nlohmann::json> {
 public:
  Redactor(const Sentinel::Impl& impl, std::vector<Finding>* findings) : impl_(impl), findings_(findings) {}
  std::string& output() { return out_; }

  bool null() override { return scalar("null"); }
  bool boolean(bool v) override { return scalar(v ? "true" : "false"); }
  bool number_integer(number_integer_t v) override { return scalar(std::to_string(v)); }
  bool number_unsigned(number_unsigned_t v) override { return scalar(std::to_string(v)); }
  bool number_float(number_float_t, const string_t& raw) override { return scalar(raw); }  // as written
  bool binary(binary_t&) override { return false; }  // not in JSON text

  bool string(string_t& value) override {
    const bool sensitive = !stack_.empty() && stack_.back().object && !value.empty() &&
                           impl_.sensitive_keys.count(normalise_key(key_)) > 0;
    value_prefix();
    if (sensitive) {
      if (value != kPlaceholder) {  // already redacted: not a new finding
        findings_->push_back(Finding{"sensitive_key", Severity::kHigh, {"sensitive_key"}, 0, value.size(),
                                     sha256_hex(value), path_});
      }
      append_json_string(&out_, kPlaceholder);
    } else {
      append_json_string(&out_, impl_.redact(value, path_, findings_));
    }
    return true;
  }

  bool start_object(std::size_t) override { return open('{', true); }
  bool start_array(std::size_t) override { return open('[', false); }
  bool end_object() override { return close('}'); }
  bool end_array() override { return close(']'); }

  bool key(string_t& k) override {
    Level& level = stack_.back();
    if (!level.first) out_ += ',';
    level.first = false;
    append_json_string(&out_, k);
    out_ += ':';
    path_.resize(level.path_len);
    append_pointer_token(&path_, k);
    key_ = k;
    return true;
  }

  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

 private:
  struct Level {
    bool object;
    bool first = true;
    size_t index = 0;     // next element (arrays)
    size_t path_len = 0;  // length of the container's own pointer in path_
  };

  // Before any value: the separator and, in an array, the element's pointer. (In an object, key()
  // has done both.)
  void value_prefix() {
    if (stack_.empty() || stack_.back().object) return;
    Level& level = stack_.back();
    if (!level.first) out_ += ',';
    level.first = false;
    path_.resize(level.path_len);
    append_pointer_token(&path_, std::to_string(level.index++));
  }
  bool scalar(std::string_view text) {
    value_prefix();
    out_ += text;
    return true;
  }
  bool open(char bracket, bool object) {
    value_prefix();
    out_ += bracket;
    stack_.push_back(Level{object, true, 0, path_.size()});
    return true;
  }
  bool close(char bracket) {
    out_ += bracket;
    stack_.pop_back();
    return true;
  }

  const Sentinel::Impl& impl_;
  std::vector<Finding>* findings_;
  std::string out_;
  std::string path_;  // JSON Pointer of the value being written
  std::string key_;   // the member name the next object value belongs to
  std::vector<Level> stack_;
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

  Result r;
  Redactor redactor(*impl_, &r.findings);
  if (!nlohmann::json::sax_parse(json.begin(), json.end(), &redactor, nlohmann::json::input_format_t::json,
                                 /*strict=*/true)) {
    return redact_text(json, channel, source);  // not JSON: redacted as text
  }
  if (r.findings.empty()) {
    r.text = std::string(json);
  } else {
    r.text = std::move(redactor.output());
    impl_->notify(channel, source, r.findings);
  }
  return r;
}

}  // namespace chorus::shhh
