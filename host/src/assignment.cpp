#include "assignment.hpp"

#include <curl/curl.h>
#include <dlfcn.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "config.hpp"
#include "host_context.hpp"
#include "logging.hpp"

namespace chorus::host {
namespace {

using json = nlohmann::json;

constexpr size_t kMaxListItems = 256;
constexpr size_t kMaxStringBytes = 1024;
constexpr size_t kMaxPromptBytes = 64 * 1024;
constexpr uint32_t kMaxTasksLimit = 10000;

bool read_string(const json &doc, const char *key, size_t max, std::optional<std::string> &out, std::string *why) {
  auto it = doc.find(key);
  if (it == doc.end() || it->is_null()) return true;
  if (!it->is_string()) {
    *why = std::string(key) + ": expected a string";
    return false;
  }
  if (it->get_ref<const std::string &>().size() > max) {
    *why = std::string(key) + ": longer than " + std::to_string(max) + " bytes";
    return false;
  }
  out = it->get<std::string>();
  return true;
}

bool read_list(const json &doc, const char *key, std::optional<std::vector<std::string>> &out, std::string *why) {
  auto it = doc.find(key);
  if (it == doc.end() || it->is_null()) return true;
  if (!it->is_array()) {
    *why = std::string(key) + ": expected an array of strings";
    return false;
  }
  if (it->size() > kMaxListItems) {
    *why = std::string(key) + ": more than " + std::to_string(kMaxListItems) + " items";
    return false;
  }
  std::vector<std::string> items;
  for (const auto &v : *it) {
    if (!v.is_string() || v.get_ref<const std::string &>().size() > kMaxStringBytes) {
      *why = std::string(key) + ": every item must be a string of at most " + std::to_string(kMaxStringBytes) + " bytes";
      return false;
    }
    items.push_back(v.get<std::string>());
  }
  out = std::move(items);
  return true;
}

std::string percent_encode(std::string_view s) {
  static const char *hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

size_t collect_body(char *data, size_t size, size_t n, void *user) {
  auto *body = static_cast<std::string *>(user);
  if (body->size() + size * n > kMaxAssignmentBytes) return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
  body->append(data, size * n);
  return size * n;
}

// libcurl, loaded on the first assignment fetch rather than linked: linking it maps its whole
// dependency tree (gnutls, kerberos, ldap, ...) into every agent at exec, before main() could tell
// gnutls not to initialise itself (docs/benchmarks.md, "Per-agent footprint"). Most agents never
// fetch an assignment.
struct Curl {
  CURL *(*easy_init)();
  CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
  CURLcode (*easy_perform)(CURL *);
  CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
  void (*easy_cleanup)(CURL *);
  const char *(*easy_strerror)(CURLcode);
};

const Curl *load_curl(std::string *why) {
  static const Curl *loaded = [why]() -> const Curl * {
    void *lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);  // never closed: kept for the process
    if (lib == nullptr) {
      *why = std::string("cannot load libcurl.so.4 (package libcurl4): ") + dlerror();
      return nullptr;
    }
    static Curl c;
    bool ok = true;
    auto sym = [&](auto &fn, const char *name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
      ok = ok && fn != nullptr;
    };
    sym(c.easy_init, "curl_easy_init");
    sym(c.easy_setopt, "curl_easy_setopt");
    sym(c.easy_perform, "curl_easy_perform");
    sym(c.easy_getinfo, "curl_easy_getinfo");
    sym(c.easy_cleanup, "curl_easy_cleanup");
    sym(c.easy_strerror, "curl_easy_strerror");
    if (!ok) *why = "libcurl.so.4 lacks the curl_easy_* functions";
    return ok ? &c : nullptr;
  }();
  if (loaded == nullptr && why->empty()) *why = "libcurl could not be loaded (see the first failure)";
  return loaded;
}

// GET url; the body on a 2xx answer, else nullopt with *why set.
std::optional<std::string> http_get(const std::string &url, uint64_t timeout_ms, std::string *why) {
  const Curl *lib = load_curl(why);
  if (lib == nullptr) return std::nullopt;
  CURL *curl = lib->easy_init();
  if (curl == nullptr) {
    *why = "cannot initialise libcurl";
    return std::nullopt;
  }
  std::string body;
  char errbuf[CURL_ERROR_SIZE] = {0};
  lib->easy_setopt(curl, CURLOPT_URL, url.c_str());
  lib->easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  lib->easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  lib->easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms));
  lib->easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect_body);
  lib->easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  lib->easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  lib->easy_setopt(curl, CURLOPT_USERAGENT, "chorus-agent/" CHORUS_VERSION);
  const CURLcode rc = lib->easy_perform(curl);
  long status = 0;
  lib->easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  lib->easy_cleanup(curl);
  if (rc == CURLE_WRITE_ERROR) {
    *why = "GET " + url + ": answer larger than " + std::to_string(kMaxAssignmentBytes) + " bytes";
    return std::nullopt;
  }
  if (rc != CURLE_OK) {
    *why = "GET " + url + ": " + (errbuf[0] != '\0' ? std::string(errbuf) : std::string(lib->easy_strerror(rc)));
    return std::nullopt;
  }
  if (status < 200 || status >= 300) {
    *why = "GET " + url + ": HTTP " + std::to_string(status);
    return std::nullopt;
  }
  return body;
}

std::optional<std::string> read_file(const std::string &path, std::string *why) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *why = "cannot read " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::string text;
  text.resize(kMaxAssignmentBytes + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxAssignmentBytes) {
    *why = path + ": larger than " + std::to_string(kMaxAssignmentBytes) + " bytes";
    return std::nullopt;
  }
  return text;
}

}  // namespace

std::optional<Assignment> parse_assignment(std::string_view json_text, std::string *why) {
  const json doc = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    *why = "not valid JSON";
    return std::nullopt;
  }
  if (!doc.is_object()) {
    *why = "expected a JSON object";
    return std::nullopt;
  }
  Assignment a;
  if (!read_string(doc, "role", kMaxStringBytes, a.role, why) || !read_string(doc, "model", kMaxStringBytes, a.model, why) ||
      !read_string(doc, "prompt", kMaxPromptBytes, a.prompt, why) || !read_list(doc, "capabilities", a.capabilities, why) ||
      !read_list(doc, "expertise", a.expertise, why) || !read_list(doc, "bootstrap_peers", a.bootstrap_peers, why))
    return std::nullopt;
  if (auto it = doc.find("max_tasks"); it != doc.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > kMaxTasksLimit) {
      *why = "max_tasks: expected an integer from 0 to " + std::to_string(kMaxTasksLimit);
      return std::nullopt;
    }
    a.max_tasks = it->get<uint32_t>();
  }
  return a;
}

std::string assignment_request_url(const AgentIdentity &agent) {
  if (agent.assignment_url.empty()) return {};
  std::string url = agent.assignment_url;
  auto add = [&](const char *name, const std::string &value) {
    if (value.empty()) return;
    url += url.find('?') == std::string::npos ? '?' : '&';
    url += name;
    url += '=';
    url += percent_encode(value);
  };
  add("task_slot", agent.task_slot);
  add("task_id", agent.task_id);
  return url;
}

AssignmentLoad load_assignment(const AgentIdentity &agent, uint64_t timeout_ms) {
  AssignmentLoad out;
  std::string source, why;
  std::optional<std::string> text;
  if (const std::string url = assignment_request_url(agent); !url.empty()) {
    source = "url:" + url;
    text = http_get(url, timeout_ms, &why);
  } else if (!agent.assignment_file.empty()) {
    source = "file:" + agent.assignment_file;
    text = read_file(agent.assignment_file, &why);
  } else {
    return out;
  }
  out.configured = true;
  if (!text) {
    out.problem = why;
    return out;
  }
  out.value = parse_assignment(*text, &why);
  if (!out.value) {
    out.problem = source.substr(source.find(':') + 1) + ": " + why;
    return out;
  }
  out.value->source = source;
  return out;
}

std::string describe(const Assignment &a) {
  std::ostringstream s;
  const char *sep = "";
  auto item = [&](const std::string &text) {
    s << sep << text;
    sep = ", ";
  };
  if (a.role) item("role '" + *a.role + "'");
  if (a.model) item("model '" + *a.model + "'");
  if (a.prompt) item("prompt of " + std::to_string(a.prompt->size()) + " bytes");
  if (a.capabilities) item(std::to_string(a.capabilities->size()) + " capabilities");
  if (a.expertise) item(std::to_string(a.expertise->size()) + " areas of expertise");
  if (a.max_tasks) item("max_tasks " + std::to_string(*a.max_tasks));
  if (a.bootstrap_peers) item(std::to_string(a.bootstrap_peers->size()) + " bootstrap peers");
  if (*sep == '\0') item("no settings");
  return s.str();
}

void merge_into_host_info(const std::optional<Assignment> &a, const AgentIdentity &agent, json &info) {
  info["role"] = a && a->role ? *a->role : agent.role;
  info["model"] = a && a->model ? *a->model : "";
  info["prompt"] = a && a->prompt ? *a->prompt : "";
  info["capabilities"] = a && a->capabilities ? *a->capabilities : std::vector<std::string>{};
  info["expertise"] = a && a->expertise ? *a->expertise : std::vector<std::string>{};
  info["max_tasks"] = a && a->max_tasks ? json(*a->max_tasks) : json(nullptr);
  info["bootstrap_peers"] = a && a->bootstrap_peers ? *a->bootstrap_peers : std::vector<std::string>{};
  info["assignment"] = a ? a->source : "";
}

void refresh_assignment(HostContext &host) {
  AssignmentLoad load = load_assignment(host.config.agent, kAssignmentTimeoutMs);
  if (!load.configured) {
    std::lock_guard lk(host.config_mu);
    host.assignment.reset();
    return;
  }
  if (!load.value) {  // host.assignment is written only on this thread: reading it needs no lock
    host_log::warn("failed to load the assignment (" + load.problem + "); continuing with " +
                   (host.assignment ? "the assignment in use" : "the base configuration"));
    return;
  }
  host_log::info("assignment loaded from " + load.value->source + ": " + describe(*load.value));
  std::lock_guard lk(host.config_mu);
  host.assignment = std::move(load.value);
}

}  // namespace chorus::host
