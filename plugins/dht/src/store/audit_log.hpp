// The append-only audit log of the role-encrypted store (README.md, "Storage"): one JSON object per
// line in <dir>/audit.jsonl, recording who stored, retrieved, announced or discovered which key, with
// which role, and how it went. It never records content.
//
//   {"time":"2026-12-06T21:33:08.123Z","op":"store","key":"...","role":"...","node":"...","result":"ok"}
//
// The file is created with mode 0600 and opened O_APPEND; one that group or others may access is
// refused. Each entry is written with a single write() of the whole line, so lines never tear or
// interleave, also between processes. append() returns once its line is on disk: appends that arrive
// while an fdatasync is running share the next one (batched fsync), so concurrent callers do not pay
// one sync each.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>

namespace chorus::dht {

class AuditLogError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class AuditOp { store, retrieve, announce, discover };

std::string_view audit_op_name(AuditOp op);

struct AuditEntry {
  int64_t time_ms = 0;  // Unix time in ms; written as RFC 3339 UTC with milliseconds
  AuditOp op = AuditOp::store;
  std::string key;     // the DHT key as text (e.g. the content hash in hex), never the content
  std::string role;    // the role the content is (or was to be) encrypted to; empty when none
  std::string node;    // the peer id of the node that did it
  std::string result;  // "ok" or a short error name
};

class AuditLog {
 public:
  // Opens (creating 0600 when absent) <dir>/audit.jsonl; throws AuditLogError naming the file.
  static std::unique_ptr<AuditLog> open(const std::string &dir);
  ~AuditLog();
  AuditLog(const AuditLog &) = delete;
  AuditLog &operator=(const AuditLog &) = delete;

  // Appends one line and returns once it is synced; throws AuditLogError when it cannot be written.
  void append(const AuditEntry &entry);

  const std::string &path() const { return path_; }

  // The line append() writes for entry (with its trailing newline).
  static std::string format_line(const AuditEntry &entry);
  // RFC 3339 UTC with milliseconds: 2026-12-06T21:33:08.123Z.
  static std::string format_time(int64_t unix_ms);

 private:
  AuditLog(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

  std::string path_;
  int fd_;
  std::mutex write_mu_;  // orders writes and counts them
  uint64_t written_ = 0;
  std::mutex sync_mu_;  // one fdatasync at a time; later appends share the next one
  uint64_t synced_ = 0;
};

}  // namespace chorus::dht
