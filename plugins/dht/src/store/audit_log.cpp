#include "store/audit_log.hpp"

#include <chorus/time_text.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>

namespace chorus::dht {

std::string_view audit_op_name(AuditOp op) {
  switch (op) {
    case AuditOp::store:
      return "store";
    case AuditOp::retrieve:
      return "retrieve";
    case AuditOp::announce:
      return "announce";
    case AuditOp::discover:
      return "discover";
  }
  return "unknown";
}

std::unique_ptr<AuditLog> AuditLog::open(const std::string &dir) {
  std::string path = dir + "/audit.jsonl";
  bool created = true;
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 && errno == EEXIST) {
    created = false;
    fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  }
  if (fd < 0) throw AuditLogError("audit log " + path + ": cannot open: " + std::strerror(errno));
  if (created) {
    // The new file's directory entry must reach the disk too, or a synced line could vanish with it.
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int saved = errno;
    ::close(fd);
    throw AuditLogError("audit log " + path + ": fstat: " + std::strerror(saved));
  }
  if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw AuditLogError("audit log " + path +
                        (S_ISREG(st.st_mode) ? ": mode " + std::string(mode) +
                                                   " lets group or others access it; refusing (chmod 600 it)"
                                             : std::string(": not a regular file")));
  }
  return std::unique_ptr<AuditLog>(new AuditLog(std::move(path), fd));
}

AuditLog::~AuditLog() { ::close(fd_); }

std::string AuditLog::format_time(int64_t unix_ms) { return chorus::rfc3339_utc_ms(unix_ms); }

std::string AuditLog::format_line(const AuditEntry &e) {
  // Keys in this order, so the file reads the same way line after line (ordered_json keeps them).
  nlohmann::ordered_json j;
  j["time"] = format_time(e.time_ms);
  j["op"] = audit_op_name(e.op);
  j["key"] = e.key;
  j["role"] = e.role;
  j["node"] = e.node;
  j["result"] = e.result;
  // Invalid UTF-8 in a caller's string is replaced rather than failing the entry; dump() escapes
  // newlines, so the line stays one line.
  std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  line.push_back('\n');
  return line;
}

void AuditLog::append(const AuditEntry &entry) {
  const std::string line = format_line(entry);
  uint64_t mine;
  {
    std::lock_guard lock(write_mu_);
    // One write() of the whole line: with O_APPEND the kernel places it at the end atomically. A
    // short write (disk full) is reported, not continued, so a later line never lands inside it.
    ssize_t n;
    do {
      n = ::write(fd_, line.data(), line.size());
    } while (n < 0 && errno == EINTR);
    if (n < 0) throw AuditLogError("audit log " + path_ + ": write: " + std::strerror(errno));
    if (static_cast<size_t>(n) != line.size()) {
      throw AuditLogError("audit log " + path_ + ": short write (" + std::to_string(n) + " of " +
                          std::to_string(line.size()) + " bytes)");
    }
    mine = ++written_;
  }
  std::lock_guard sync_lock(sync_mu_);
  if (synced_ >= mine) return;  // a sync that started after our write covered it
  uint64_t upto;
  {
    std::lock_guard lock(write_mu_);
    upto = written_;
  }
  if (::fdatasync(fd_) != 0) throw AuditLogError("audit log " + path_ + ": fdatasync: " + std::strerror(errno));
  synced_ = upto;
}

}  // namespace chorus::dht
