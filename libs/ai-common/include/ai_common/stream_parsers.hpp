// Incremental parsers for streamed HTTP bodies: NDJSON (Ollama) and Server-Sent Events (OpenAI).
// Input may arrive split at any byte; lines longer than the limit are an error (never unbounded).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace chorus::ai_common {

// Splits a byte stream into lines ("\n" or "\r\n"). on_line(std::string_view) returns false to stop.
class LineSplitter {
 public:
  explicit LineSplitter(size_t max_line = 1u << 20) : max_line_(max_line) {}
  // Returns false when a line exceeds the limit or on_line asked to stop.
  template <class F>
  bool feed(std::string_view bytes, F &&on_line) {
    while (!bytes.empty()) {
      const size_t nl = bytes.find('\n');
      if (nl == std::string_view::npos) {
        if (buf_.size() + bytes.size() > max_line_) return false;
        buf_.append(bytes);
        return true;
      }
      std::string_view line;
      if (buf_.empty()) {
        line = bytes.substr(0, nl);
      } else {
        if (buf_.size() + nl > max_line_) return false;
        buf_.append(bytes.substr(0, nl));
        line = buf_;
      }
      if (line.size() > max_line_) return false;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      const bool go = on_line(line);
      buf_.clear();
      bytes.remove_prefix(nl + 1);
      if (!go) return false;
    }
    return true;
  }
  std::string_view pending() const noexcept { return buf_; }

 private:
  size_t max_line_;
  std::string buf_;
};

// Server-Sent Events (WHATWG HTML "event stream" parsing): "data:" lines are joined with "\n",
// "event:" names the event, ":" lines are comments, a blank line dispatches. on_event(event, data)
// returns false to stop.
class SseParser {
 public:
  explicit SseParser(size_t max_event = 1u << 20) : lines_(max_event), max_event_(max_event) {}
  template <class F>
  bool feed(std::string_view bytes, F &&on_event) {
    return lines_.feed(bytes, [&](std::string_view line) {
      if (line.empty()) {
        if (!has_data_) {
          event_.clear();
          return true;
        }
        const bool go = on_event(std::string_view(event_.empty() ? std::string_view("message") : event_),
                                 std::string_view(data_));
        data_.clear();
        event_.clear();
        has_data_ = false;
        return go;
      }
      if (line.front() == ':') return true;
      std::string_view field = line, value;
      const size_t colon = line.find(':');
      if (colon != std::string_view::npos) {
        field = line.substr(0, colon);
        value = line.substr(colon + 1);
        if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      }
      if (field == "data") {
        if (has_data_) data_.push_back('\n');
        if (data_.size() + value.size() > max_event_) return false;
        data_.append(value);
        has_data_ = true;
      } else if (field == "event") {
        event_.assign(value);
      }
      return true;  // id, retry and unknown fields are ignored
    });
  }
  // True when a partial event or line is buffered (a stream that ends here was truncated).
  bool mid_event() const noexcept { return has_data_ || !lines_.pending().empty(); }

 private:
  LineSplitter lines_;
  size_t max_event_;
  std::string event_, data_;
  bool has_data_ = false;
};

}  // namespace chorus::ai_common
