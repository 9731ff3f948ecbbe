// See redaction.hpp. The audit sink runs inside redaction, and redaction runs inside log(): the sink
// therefore never logs through log(); its one warning goes through log_unredacted().
#include "redaction.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>

#include <nlohmann/json.hpp>

#include "logging.hpp"
#include "metrics.hpp"

namespace chorus::host {
namespace {

// The JSON-lines audit file: created 0600 on the first finding, one write() per line (no user-space
// buffer, so a line is in the file when the redaction returns), never fatal.
class AuditFile {
 public:
  AuditFile(std::string path, MetricsRegistry *metrics, uint64_t errors_id)
      : path_(std::move(path)), metrics_(metrics), errors_id_(errors_id) {}
  ~AuditFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  AuditFile(const AuditFile &) = delete;
  AuditFile &operator=(const AuditFile &) = delete;

  void append(const std::string &line) {
    std::lock_guard lk(mu_);
    if (fd_ < 0) fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd_ < 0) return failed(std::string("cannot open: ") + std::strerror(errno));
    size_t done = 0;
    while (done < line.size()) {
      ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return failed(std::string("cannot write: ") + std::strerror(errno));
      done += static_cast<size_t>(n);
    }
  }

 private:
  void failed(const std::string &why) {
    if (metrics_ != nullptr) metrics_->update(errors_id_, MetricsRegistry::kAdd, std::vector<std::string>{}, 1);
    if (!warned_) {
      warned_ = true;
      log_unredacted(LogLevel::kWarn, "host",
                     "shhh: audit file '" + path_ + "': " + why + " (counted in chorus_shhh_audit_errors_total; "
                     "further failures are not logged)");
    }
  }

  const std::string path_;
  MetricsRegistry *const metrics_;
  const uint64_t errors_id_;
  std::mutex mu_;
  int fd_ = -1;
  bool warned_ = false;
};

struct State {
  std::unique_ptr<shhh::Sentinel> sentinel;  // null when SHHH is disabled
  bool channel_on[3] = {false, false, false};
};

std::atomic<std::shared_ptr<const State>> g_state;

std::string audit_line(shhh::Channel channel, std::string_view source, const shhh::Finding &f) {
  nlohmann::json j = {{"ts", utc_timestamp()},
                      {"channel", shhh::channel_name(channel)},
                      {"source", source},
                      {"rule", f.rule},
                      {"severity", shhh::severity_name(f.severity)},
                      {"tags", f.tags},
                      {"sha256", f.sha256_hex},
                      {"offset", f.offset},
                      {"length", f.length}};
  if (!f.json_path.empty()) j["json_path"] = f.json_path;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace

std::string audit_file_path(const ShhhConfig &config, const std::string &state_dir) {
  if (config.audit_file == "off") return "";
  if (config.audit_file.empty()) return state_dir + "/shhh-audit.jsonl";
  if (config.audit_file[0] == '/') return config.audit_file;
  return state_dir + "/" + config.audit_file;
}

bool install_redaction(const ShhhConfig &config, const std::string &state_dir, MetricsRegistry *metrics,
                       std::string *error) {
  auto state = std::make_shared<State>();
  if (config.enabled) {
    std::string why;
    state->sentinel = shhh::Sentinel::create(shhh_options(config), &why);
    if (!state->sentinel) {
      if (error) *error = "host.shhh.rules: " + why;
      return false;
    }
    state->channel_on[static_cast<int>(shhh::Channel::kLog)] = config.logs;
    state->channel_on[static_cast<int>(shhh::Channel::kPubsub)] = config.pubsub;
    state->channel_on[static_cast<int>(shhh::Channel::kUcxi)] = config.ucxi;

    uint64_t findings_id = 0, errors_id = 0;
    if (metrics != nullptr) {
      std::string e;
      using K = MetricsRegistry::Kind;
      findings_id = metrics->define(K::kCounter, "chorus_shhh_findings_total",
                                    "Secrets SHHH redacted, by rule, severity and channel",
                                    {"rule", "severity", "channel"}, {}, &e).value_or(0);
      errors_id = metrics->define(K::kCounter, "chorus_shhh_audit_errors_total",
                                  "Audit lines SHHH could not write", {}, {}, &e).value_or(0);
    }
    std::shared_ptr<AuditFile> audit;
    if (std::string path = audit_file_path(config, state_dir); !path.empty())
      audit = std::make_shared<AuditFile>(std::move(path), metrics, errors_id);
    state->sentinel->set_sink([audit, metrics, findings_id](shhh::Channel channel, std::string_view source,
                                                            const shhh::Finding &f) {
      try {
        if (metrics != nullptr)
          metrics->update(findings_id, MetricsRegistry::kAdd,
                          std::vector<std::string>{f.rule, std::string(shhh::severity_name(f.severity)),
                                                   std::string(shhh::channel_name(channel))},
                          1);
        if (audit) audit->append(audit_line(channel, source, f));
      } catch (...) {  // the redaction itself must go on
      }
    });
  }
  g_state.store(std::move(state));
  return true;
}

void uninstall_redaction() { g_state.store(nullptr); }

bool redaction_enabled(shhh::Channel channel) {
  std::shared_ptr<const State> state = g_state.load();
  return state && state->sentinel && state->channel_on[static_cast<int>(channel)];
}

std::string redact_for(shhh::Channel channel, bool json, std::string_view in, std::string_view source,
                       uint32_t *findings) {
  if (findings) *findings = 0;
  std::shared_ptr<const State> state = g_state.load();
  if (!state || !state->sentinel || !state->channel_on[static_cast<int>(channel)]) return std::string(in);
  shhh::Result r = json ? state->sentinel->redact_json(in, channel, source)
                        : state->sentinel->redact_text(in, channel, source);
  if (findings) *findings = static_cast<uint32_t>(r.findings.size());
  return std::move(r.text);
}

}  // namespace chorus::host
