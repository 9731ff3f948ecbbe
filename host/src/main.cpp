// chorus-agent: command line (docs/contract.md, Command line).
#include <csignal>
#include <execinfo.h>
#include <malloc.h>
#include <unistd.h>
#include <cstdlib>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "build_info.hpp"
#include "config.hpp"
#include "eventlog/verify.hpp"
#include "logging.hpp"
#include "paths.hpp"
#include "redaction.hpp"
#include "runtime.hpp"

using chorus::host::Config;
using json = nlohmann::json;

namespace {

constexpr const char *kUsage =
    "usage: chorus-agent [run] [-c FILE]          run the agent until SIGTERM/SIGINT\n"
    "       chorus-agent check [-c FILE] [--json]   validate config and plugins, print the start order\n"
    "       chorus-agent plugins [-c FILE] [--json] list the plugins found\n"
    "       chorus-agent verify-log [-c FILE] [--state-dir DIR | --file PATH]\n"
    "                                               check the event log's hash chain and signatures\n"
    "       chorus-agent --version | --help\n"
    "\n"
    "The config file is -c FILE, else $CHORUS_CONFIG, else /etc/chorus/chorus.yaml if it exists,\n"
    "else the built-in default. Signals: SIGTERM/SIGINT stop, SIGHUP reloads the config live.\n";

struct Args {
  std::string command = "run";
  std::string config;
  bool json = false;
  std::string state_dir;  // verify-log: the state dir whose eventlog/log.db to check
  std::string log_file;   // verify-log: the database file itself
};

int usage_error(const std::string &message) {
  std::cerr << "chorus-agent: " << message << "\n" << kUsage;
  return chorus::host::kExitUsage;
}

std::string join(const std::vector<std::string> &items, const char *sep = ", ") {
  std::string out;
  for (const auto &s : items) out += (out.empty() ? "" : sep) + s;
  return out;
}

std::string services_text(const chorus::host::PluginInfo &info, bool provides) {
  std::vector<std::string> items;
  if (provides)
    for (const auto &p : info.provides)
      items.push_back(p.service + " " + std::to_string(p.major) + "." + std::to_string(p.minor) +
                      (p.swappable ? " (swappable)" : ""));
  else
    for (const auto &r : info.requires_)
      items.push_back(r.service + " " + r.range + (r.optional ? " (optional)" : "") + (r.late ? " (late)" : ""));
  return items.empty() ? "-" : join(items);
}

int cmd_check(const Config &config, bool as_json) {
  chorus::host::Runtime runtime(config, "");
  chorus::host::CheckReport report = runtime.check();
  // A plugin that `run` would refuse to live without makes the configuration unusable.
  for (const auto &s : report.skipped) {
    const auto *entry = config.find_plugin(s.id);
    if ((entry && entry->critical) || config.host.strict)
      report.errors.push_back(std::string(entry && entry->critical ? "critical " : "") + "plugin '" + s.id +
                              "' would not start: " + s.reason);
  }
  if (as_json) {
    std::cout << report.to_json().dump(2) << "\n";
  } else {
    std::cout << "config: " << config.source << "\n";
    std::cout << "start order: " << (report.order.empty() ? "(none)" : join(report.order)) << "\n";
    std::cout << "bindings:" << (report.bindings.empty() ? " (none)" : "") << "\n";
    for (const auto &[service, id] : report.bindings) std::cout << "  " << service << " -> " << id << "\n";
    std::cout << "skipped:" << (report.skipped.empty() ? " (none)" : "") << "\n";
    for (const auto &s : report.skipped) std::cout << "  " << s.id << ": " << s.reason << "\n";
    for (const auto &w : report.warnings) std::cout << "warning: " << w << "\n";
    for (const auto &e : report.errors) std::cout << "error: " << e << "\n";
  }
  return report.errors.empty() ? chorus::host::kExitOk : chorus::host::kExitUsage;
}

int cmd_plugins(const Config &config, bool as_json) {
  std::vector<std::string> errors;
  auto listed = chorus::host::list_plugins(config, &errors);
  if (as_json) {
    json out = json::array();
    for (const auto &p : listed) {
      json item = {{"path", p.path}};
      if (p.info) {
        const auto &i = *p.info;
        item["id"] = i.id;
        item["version"] = i.version;
        item["abi"] = std::to_string(i.abi_major) + "." + std::to_string(i.abi_minor);
        item["description"] = i.description;
        json provides = json::array(), requires_ = json::array();
        for (const auto &s : i.provides)
          provides.push_back({{"service", s.service},
                              {"version", std::to_string(s.major) + "." + std::to_string(s.minor)},
                              {"swappable", s.swappable}});
        for (const auto &r : i.requires_)
          requires_.push_back({{"service", r.service}, {"range", r.range}, {"optional", r.optional}, {"late", r.late}});
        item["provides"] = provides;
        item["requires"] = requires_;
      } else {
        item["error"] = p.error;
      }
      out.push_back(item);
    }
    std::cout << out.dump(2) << "\n";
  } else {
    std::cout << "plugin directories: " << join(chorus::host::plugin_search_dirs(config.host)) << "\n";
    for (const auto &p : listed) {
      if (!p.info) {
        std::cout << "! " << p.path << "\n    error: " << p.error << "\n";
        continue;
      }
      const auto &i = *p.info;
      std::cout << i.id << " " << i.version << " (ABI " << i.abi_major << "." << i.abi_minor << ")\n"
                << "    provides: " << services_text(i, true) << "\n"
                << "    requires: " << services_text(i, false) << "\n"
                << "    path:     " << p.path << "\n";
    }
    if (listed.empty()) std::cout << "(no plugins found)\n";
  }
  for (const auto &e : errors) std::cerr << "chorus-agent: " << e << "\n";
  return errors.empty() ? chorus::host::kExitOk : chorus::host::kExitUsage;
}

// verify-log: walks the event log's whole chain (libs/eventlog-format, verify.hpp). Exit 0 when it is
// whole, 1 at the first bad entry (its index and what is wrong on stdout), 2 when the file cannot be
// read as an event log. The database is opened read-only: a running agent may keep appending.
int cmd_verify_log(const std::string &path) {
  using chorus::eventlog::VerifyReport;
  const VerifyReport r = chorus::eventlog::verify_file(path);
  if (r.outcome == VerifyReport::Outcome::kUnreadable) {
    std::cerr << "chorus-agent: verify-log: " << r.problem << "\n";
    return chorus::host::kExitUsage;
  }
  std::cout << "event log: " << path << "\n";
  if (r.outcome == VerifyReport::Outcome::kBroken) {
    std::cout << "BAD entry " << r.bad_index << ": " << r.problem << "\n";
    std::cout << "entries before it verified: " << r.entries << "\n";
    return 1;
  }
  std::cout << "entries: " << r.entries << " (hash chain and signatures verified)\n";
  if (r.entries > 0) std::cout << "head: index " << (r.entries - 1) << ", hash " << chorus::eventlog::to_hex(r.head) << "\n";
  for (const auto &[author, count] : r.authors) std::cout << "author: " << author << " (" << count << " entries)\n";
  return chorus::host::kExitOk;
}

// A crash (SIGSEGV, SIGBUS, SIGILL, SIGFPE) writes the stack to stderr before the default action
// (exit by the signal, core dump where enabled), so a crash in CI or under systemd leaves a trace in
// the log. Only async-signal-safe calls; backtrace() is called once at start-up so that it does not
// have to load libgcc inside the handler. Sanitizer builds keep their own, better, reports.
void on_fatal_signal(int sig) {
  static const char kHead[] = "chorus-agent: fatal signal; stack (module(+offset), see addr2line):\n";
  (void)!write(STDERR_FILENO, kHead, sizeof kHead - 1);
  void *frames[64];
  int n = backtrace(frames, 64);
  backtrace_symbols_fd(frames, n, STDERR_FILENO);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void install_crash_trace() {
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_UNDEFINED__)
  void *warm[1];
  (void)backtrace(warm, 1);
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE}) std::signal(sig, on_fatal_signal);
#endif
}

// glibc's malloc hands a thread that meets contention an arena of its own, up to 8 per core, and each
// arena keeps what it freed for its own threads. The agent runs about 20 threads (the host's and the
// plugins'), so memory freed after a burst stays scattered over many arenas. Two arenas cost the
// cluster soak's agents 1.3 MiB less after its faults (docs/benchmarks.md, per-agent footprint); the
// threads mostly wait, so they seldom contend.
//
// A fixed mmap threshold turns off glibc's sliding one: after a large buffer is freed, glibc raises
// the threshold to that buffer's size (up to 32 MiB), so the next bursts' stream and queue buffers land
// inside the heap and pin its pages long after they are freed. The heal of a partition is such a burst
// (every peer's backlog at once); with the threshold fixed at 64 KiB those buffers are mappings of
// their own, returned when freed, and the heap's top is trimmed past 128 KiB free
// (docs/benchmarks.md, "Cluster soak"). MALLOC_ARENA_MAX or GLIBC_TUNABLES still decide.
void tune_malloc() {
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
  if (std::getenv("MALLOC_ARENA_MAX") != nullptr || std::getenv("GLIBC_TUNABLES") != nullptr) return;
  mallopt(M_ARENA_MAX, 2);
  mallopt(M_MMAP_THRESHOLD, 64 << 10);
  mallopt(M_TRIM_THRESHOLD, 128 << 10);
#endif
}

// gnutls initialises itself when it is loaded (it reads its configuration and loads p11-kit's trust
// module: about 0.8 MiB per agent). Nothing here uses gnutls: it comes in with libcurl's librtmp
// (rtmp:// URLs, which no plugin asks for), and librtmp initialises it explicitly if it ever runs.
// Set before any plugin loads libcurl; a value the user set is kept.
void skip_gnutls_implicit_init() { ::setenv("GNUTLS_NO_IMPLICIT_INIT", "1", 0); }

}  // namespace

int main(int argc, char **argv) {
  tune_malloc();  // before any thread starts
  skip_gnutls_implicit_init();
  install_crash_trace();
  Args args;
  bool command_seen = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (a == "--version" || a == "-V") {
      std::cout << "chorus-agent " << CHORUS_VERSION << " (plugin ABI " << CHORUS_ABI_MAJOR << "." << CHORUS_ABI_MINOR
                << "; commit " << CHORUS_GIT_COMMIT << ", built " << CHORUS_BUILD_DATE << ")\n";
      return 0;
    }
    if (a == "-c" || a == "--config") {
      if (i + 1 >= argc) return usage_error(a + " needs a file name");
      args.config = argv[++i];
    } else if (a.rfind("--config=", 0) == 0) {
      args.config = a.substr(9);
    } else if (a == "--json") {
      args.json = true;
    } else if (a == "--state-dir" || a == "--file") {
      if (i + 1 >= argc) return usage_error(a + " needs a path");
      (a == "--file" ? args.log_file : args.state_dir) = argv[++i];
    } else if (!a.empty() && a[0] == '-') {
      return usage_error("unknown option '" + a + "'");
    } else if (!command_seen && (a == "run" || a == "check" || a == "plugins" || a == "verify-log")) {
      args.command = a;
      command_seen = true;
    } else {
      return usage_error("unknown command '" + a + "'");
    }
  }
  if (args.json && args.command != "check" && args.command != "plugins")
    return usage_error("--json goes with check or plugins");
  if ((!args.state_dir.empty() || !args.log_file.empty()) && args.command != "verify-log")
    return usage_error("--state-dir and --file go with verify-log");
  if (!args.state_dir.empty() && !args.log_file.empty()) return usage_error("give --state-dir or --file, not both");
  // An explicit database needs no config (and must not fail on one).
  if (args.command == "verify-log" && !args.log_file.empty()) return cmd_verify_log(args.log_file);
  if (args.command == "verify-log" && !args.state_dir.empty())
    return cmd_verify_log(args.state_dir + "/eventlog/log.db");

  std::string path = chorus::host::locate_config(args.config);
  Config config;
  try {
    config = path.empty() ? chorus::host::parse_config(chorus::host::default_config_yaml(), "<built-in default>")
                          : chorus::host::load_config_file(path);
  } catch (const std::exception &e) {
    std::cerr << "chorus-agent: " << e.what() << "\n";
    return chorus::host::kExitUsage;
  }
  auto level = chorus::host::parse_log_level(config.host.log_level).value_or(chorus::host::LogLevel::kInfo);
  // check and plugins print results on stdout; keep their stderr quiet unless something is wrong.
  if (args.command != "run" && level < chorus::host::LogLevel::kWarn) level = chorus::host::LogLevel::kWarn;
  chorus::host::configure_logging(level, config.host.log_format);
  // SHHH before anything logs a line a plugin or a config value could have put a secret in; the
  // runtime installs it again with its metrics. The rules were compiled once by parse_config.
  std::string shhh_error;
  if (!chorus::host::install_redaction(config.host.shhh, chorus::host::resolve_state_dir(config.host), nullptr,
                                       &shhh_error)) {
    std::cerr << "chorus-agent: " << shhh_error << "\n";
    return chorus::host::kExitUsage;
  }

  if (args.command == "check") return cmd_check(config, args.json);
  if (args.command == "plugins") return cmd_plugins(config, args.json);
  if (args.command == "verify-log")
    return cmd_verify_log(chorus::host::resolve_state_dir(config.host) + "/eventlog/log.db");

  std::signal(SIGPIPE, SIG_IGN);  // a client closing early must not kill the agent
  chorus::host::log(chorus::host::LogLevel::kInfo, "host",
                    "chorus-agent " CHORUS_VERSION " starting; config: " + config.source);
  chorus::host::Runtime runtime(std::move(config), path);
  int rc = runtime.run();
  chorus::host::log_flush();
  // A plugin abandoned in a hung call still has a thread inside its code; running static destructors
  // under it could crash a clean stop, so leave without them.
  if (runtime.abandoned_plugins()) std::_Exit(rc);
  return rc;
}
