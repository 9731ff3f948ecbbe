#include "client.hpp"

#include <curl/curl.h>

namespace chorus::license {
namespace {

struct Transfer {
  std::string body;
  size_t max_body = 0;
  bool truncated = false;
  const std::atomic<bool> *cancel = nullptr;
};

size_t on_data(char *ptr, size_t size, size_t nmemb, void *user) {
  auto *t = static_cast<Transfer *>(user);
  const size_t n = size * nmemb;
  if (t->body.size() + n > t->max_body) {
    t->truncated = true;
    return 0;  // abort: the answer is too large to be a validation answer
  }
  t->body.append(ptr, n);
  return n;
}

int on_progress(void *user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto *t = static_cast<const Transfer *>(user);
  return t->cancel != nullptr && t->cancel->load() ? 1 : 0;  // non-zero aborts the transfer
}

}  // namespace

void http_global_init() { curl_global_init(CURL_GLOBAL_DEFAULT); }

HttpResult post_json(const std::string &url, const std::string &body, int64_t timeout_ms, size_t max_body,
                     const std::atomic<bool> *cancel) {
  HttpResult out;
  CURL *e = curl_easy_init();
  if (e == nullptr) {
    out.error = "curl_easy_init failed";
    return out;
  }
  Transfer t;
  t.max_body = max_body;
  t.cancel = cancel;
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_slist *headers = curl_slist_append(nullptr, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Accept: application/json");
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_ms));
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &on_data);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, &on_progress);
  curl_easy_setopt(e, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);  // a redirect is not an answer
  const CURLcode rc = curl_easy_perform(e);
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(e);
  out.body_truncated = t.truncated;
  if (rc != CURLE_OK || t.truncated) {
    out.status = 0;
    out.error = t.truncated ? "answer larger than " + std::to_string(max_body) + " bytes"
                            : (errbuf[0] != '\0' ? std::string(errbuf) : std::string(curl_easy_strerror(rc)));
    return out;
  }
  out.status = static_cast<int>(status);
  out.body = std::move(t.body);
  return out;
}

}  // namespace chorus::license
