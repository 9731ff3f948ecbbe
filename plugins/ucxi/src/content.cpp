// Implementation of content.hpp. Every operation is a chain of DHT calls; the chain holds only the
// operation's id, and Impl's table of running operations decides who delivers the outcome, so
// stop() and a late DHT completion can never both call `done` (README.md, "Storage").
#include "content.hpp"

#include <sodium.h>

#include <atomic>
#include <chrono>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include <chorus/services/dht_v1.h>
#include <chorus/status.h>
#include <chorus/time_text.hpp>

#include "navigator.hpp"
#include "store/index.hpp"

namespace chorus::ucxi {

using json = nlohmann::json;
using Bytes = std::vector<uint8_t>;

namespace {

std::string sha256_hex(const uint8_t *p, size_t n) {
  uint8_t h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, p, n);
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : h) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

uint64_t now_unix_ms() { return static_cast<uint64_t>(chorus::unix_ms(std::chrono::system_clock::now())); }

uint64_t steady_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

Outcome failure(chorus_status st, std::string message, std::string field = "") {
  Outcome o;
  o.status = st;
  o.message = std::move(message);
  o.field = std::move(field);
  return o;
}

// A DHT error as the store reports it: the dht's own codes become ours, the rest pass on.
Outcome from_dht(chorus_status st, const std::string &message) {
  switch (st) {
    case CHORUS_E_DHT_NOT_AUTHORISED:
      return failure(CHORUS_E_UCXI_NOT_AUTHORISED, message);
    case CHORUS_E_DHT_INTEGRITY:
      return failure(CHORUS_E_INTERNAL, "the DHT's copy is damaged: " + message);
    case CHORUS_E_NOT_FOUND:
    case CHORUS_E_TIMEOUT:
    case CHORUS_E_UNAVAILABLE:
    case CHORUS_E_CANCELLED:
    case CHORUS_E_TOO_LARGE:
      return failure(st, message);
    case CHORUS_E_BUSY:
      return failure(CHORUS_E_UNAVAILABLE, message);
    default:
      return failure(CHORUS_E_INTERNAL, std::string(chorus_status_name(st)) + ": " + message);
  }
}

ucxl::TemporalSegment specific(uint64_t version) {
  return ucxl::TemporalSegment{ucxl::TemporalType::kSpecific, ucxl::Direction::kNone, version};
}

json version_to_json(const VersionRow &v) {
  return json{{"version", v.version}, {"sha256", v.sha256}, {"size", v.size}, {"content_type", v.content_type},
              {"role", v.role}, {"author", v.author}, {"created", v.created_ms}, {"deleted", v.deleted}};
}

// The version list record: {"address": series, "versions": [...]}, versions numbered 1..n in order.
std::optional<std::vector<VersionRow>> parse_version_record(const Bytes &data, const std::string &series,
                                                            std::string *why) {
  const json j = json::parse(data.begin(), data.end(), nullptr, false);
  if (!j.is_object() || !j.contains("address") || !j["address"].is_string() || !j.contains("versions") ||
      !j["versions"].is_array()) {
    *why = "not a version record";
    return std::nullopt;
  }
  if (j["address"].get<std::string>() != series) {
    *why = "the record names another series";
    return std::nullopt;
  }
  std::vector<VersionRow> out;
  for (const json &e : j["versions"]) {
    auto text = [&e](const char *k) -> std::optional<std::string> {
      if (!e.is_object() || !e.contains(k) || !e[k].is_string()) return std::nullopt;
      return e[k].get<std::string>();
    };
    auto number = [&e](const char *k) -> std::optional<uint64_t> {
      if (!e.is_object() || !e.contains(k) || !e[k].is_number_unsigned()) return std::nullopt;
      return e[k].get<uint64_t>();
    };
    VersionRow v;
    const auto version = number("version"), size = number("size"), created = number("created");
    const auto sha = text("sha256"), type = text("content_type"), role = text("role"), author = text("author");
    if (!version || !size || !created || !sha || !type || !role || !author || !e.contains("deleted") ||
        !e["deleted"].is_boolean() || *version != out.size() + 1) {
      *why = "version entry " + std::to_string(out.size() + 1) + " is malformed";
      return std::nullopt;
    }
    v.version = *version;
    v.size = *size;
    v.created_ms = *created;
    v.sha256 = *sha;
    v.content_type = *type;
    v.role = *role;
    v.author = *author;
    v.deleted = e["deleted"].get<bool>();
    if (v.deleted != v.sha256.empty()) {
      *why = "version " + std::to_string(v.version) + " is malformed";
      return std::nullopt;
    }
    out.push_back(std::move(v));
  }
  return out;
}

Bytes version_record(const std::string &series, const std::vector<VersionRow> &versions) {
  json list = json::array();
  for (const VersionRow &v : versions) list.push_back(version_to_json(v));
  const std::string text = json{{"address", series}, {"versions", std::move(list)}}.dump();
  return Bytes(text.begin(), text.end());
}

// agent, project and task name one owner and place; role "any" is resolved to the agent's role
// (put) or is part of the name, so it is allowed.
bool concrete(const ucxl::Address &a) { return a.agent != "any" && a.project != "any" && a.task != "any"; }

}  // namespace

std::string version_record_key(const std::string &id) { return "/chorus/ucxl/index/" + id; }

std::string content_key(const std::string &id, const std::string &sha256) { return "ucxl/" + id + "/" + sha256; }

std::vector<uint8_t> provider_key(const std::string &series) {
  Bytes key{0x12, 0x20};
  key.resize(2 + crypto_hash_sha256_BYTES);
  crypto_hash_sha256(key.data() + 2, reinterpret_cast<const uint8_t *>(series.data()), series.size());
  return key;
}

namespace {

// The Impl whose DHT completion this thread is running, if any (see ~ContentStore).
thread_local const void *running_impl = nullptr;

}  // namespace

// A DHT completion's hold on Impl: empty when the store is gone; marks the thread meanwhile.
class ContentStore::Entered {
 public:
  explicit Entered(const std::weak_ptr<Impl> &weak) : me_(weak.lock()), prev_(running_impl) {
    if (me_) running_impl = me_.get();
  }
  ~Entered() { running_impl = prev_; }
  Entered(const Entered &) = delete;
  Entered &operator=(const Entered &) = delete;
  Impl *operator->() const { return me_.get(); }
  bool operator!() const { return !me_; }

 private:
  std::shared_ptr<Impl> me_;
  const void *prev_;
};

struct ContentStore::Impl : std::enable_shared_from_this<Impl> {
  std::shared_ptr<Dht> dht;
  std::shared_ptr<Index> index;
  Identity self;
  ContentSettings s;

  std::mutex mu;  // guards everything below
  bool stopped = false;
  uint64_t next_op = 1;
  std::map<uint64_t, Done> running;
  // Immutable content by sha256, most recently used first. Only content this agent decrypted.
  std::list<std::pair<std::string, std::shared_ptr<const Bytes>>> lru;
  std::unordered_map<std::string, decltype(lru)::iterator> lru_at;
  // The last version list fetched per series id (answers *~N for N within it; versions never change).
  std::unordered_map<std::string, std::vector<VersionRow>> lists;
  std::list<std::string> lists_order;

  std::atomic<uint64_t> cache_hits{0}, cache_misses{0}, list_fetches{0}, list_cache_hits{0}, resolved{0},
      out_of_range{0}, not_found{0}, versions_stored{0}, tombstones{0}, announced{0}, discovered{0},
      index_errors{0};
  std::atomic<bool> index_healthy{true};
  std::string last_index_error;  // under mu

  // --- operation bookkeeping -------------------------------------------------------------------

  // Registers an operation; 0 (and `done` already called) when stopped.
  uint64_t begin(Done &done) {
    {
      std::lock_guard lock(mu);
      if (!stopped) {
        const uint64_t id = next_op++;
        running.emplace(id, std::move(done));
        return id;
      }
    }
    done(failure(CHORUS_E_CANCELLED, "ucxi: the content store is stopping"));
    return 0;
  }
  bool alive(uint64_t id) {
    std::lock_guard lock(mu);
    return running.count(id) != 0;
  }
  // Delivers the outcome unless stop() (or an earlier finish) already did.
  void finish(uint64_t id, Outcome o) {
    Done done;
    {
      std::lock_guard lock(mu);
      auto it = running.find(id);
      if (it == running.end()) return;
      done = std::move(it->second);
      running.erase(it);
    }
    done(std::move(o));
  }
  void stop() {
    std::map<uint64_t, Done> cancelled;
    {
      std::lock_guard lock(mu);
      stopped = true;
      cancelled.swap(running);
    }
    for (auto &[id, done] : cancelled) done(failure(CHORUS_E_CANCELLED, "ucxi: the content store stopped"));
  }

  // Milliseconds left before the operation's deadline; 0 = passed (the caller finishes with TIMEOUT).
  static uint32_t left(uint64_t deadline) {
    const uint64_t now = steady_ms();
    return now >= deadline ? 0 : static_cast<uint32_t>(std::min<uint64_t>(deadline - now, UINT32_MAX));
  }
  uint64_t deadline_of(uint32_t timeout_ms) const { return steady_ms() + (timeout_ms != 0 ? timeout_ms : s.timeout_ms); }
  bool expired(uint64_t id, uint64_t deadline, const char *step) {
    if (left(deadline) != 0) return false;
    finish(id, failure(CHORUS_E_TIMEOUT, std::string("ucxi: the operation's deadline passed before ") + step));
    return true;
  }

  // --- index and caches --------------------------------------------------------------------------

  template <class F>
  void index_write(F &&f) {
    if (!index) return;
    try {
      f(*index);
      index_healthy = true;
    } catch (const IndexError &e) {
      ++index_errors;
      index_healthy = false;
      std::lock_guard lock(mu);
      last_index_error = e.what();
    }
  }

  std::shared_ptr<const Bytes> cached(const std::string &sha) {
    std::lock_guard lock(mu);
    auto it = lru_at.find(sha);
    if (it == lru_at.end()) return nullptr;
    lru.splice(lru.begin(), lru, it->second);
    return it->second->second;
  }
  void remember(const std::string &sha, std::shared_ptr<const Bytes> bytes) {
    if (s.cache_entries == 0) return;
    std::lock_guard lock(mu);
    if (lru_at.count(sha) != 0) return;
    lru.emplace_front(sha, std::move(bytes));
    lru_at[sha] = lru.begin();
    while (lru.size() > s.cache_entries) {
      lru_at.erase(lru.back().first);
      lru.pop_back();
    }
  }
  void remember_list(const std::string &id, const std::vector<VersionRow> &v) {
    if (s.cache_entries == 0) return;
    std::lock_guard lock(mu);
    auto it = lists.find(id);
    if (it != lists.end()) {
      if (v.size() >= it->second.size()) it->second = v;
      return;
    }
    lists.emplace(id, v);
    lists_order.push_back(id);
    while (lists_order.size() > s.cache_entries) {
      lists.erase(lists_order.front());
      lists_order.pop_front();
    }
  }
  std::optional<std::vector<VersionRow>> cached_list(const std::string &id, uint64_t at_least) {
    std::lock_guard lock(mu);
    auto it = lists.find(id);
    if (it == lists.end() || it->second.size() < at_least) return std::nullopt;
    return it->second;
  }

  // --- steps ---------------------------------------------------------------------------------------

  // The version list of a series (empty when the DHT has none), then next(list).
  void fetch_list(uint64_t id, uint64_t deadline, const std::string &series,
                  std::function<void(std::vector<VersionRow>)> next) {
    if (expired(id, deadline, "fetching the version list")) return;
    ++list_fetches;
    std::weak_ptr<Impl> weak = weak_from_this();
    const std::string key = version_record_key(series_id(series));
    dht->get_value(key, left(deadline), [weak, id, series, next = std::move(next)](chorus_status st, std::string msg, Bytes data) {
      Entered me(weak);
      if (!me || !me->alive(id)) return;
      if (st == CHORUS_E_NOT_FOUND) return next({});
      if (st != CHORUS_OK) return me->finish(id, from_dht(st, "ucxi: the version list of " + series + ": " + msg));
      std::string why;
      auto list = parse_version_record(data, series, &why);
      if (!list) return me->finish(id, failure(CHORUS_E_INTERNAL, "ucxi: the version list of " + series + " in the DHT: " + why));
      next(std::move(*list));
    });
  }

  // Appends `v` to the list and publishes it; done_meta on success.
  void publish(uint64_t id, uint64_t deadline, const ucxl::Address &addr, std::vector<VersionRow> list, VersionRow v) {
    if (expired(id, deadline, "publishing the version list")) return;
    const std::string series = addr.series();
    list.push_back(v);
    std::weak_ptr<Impl> weak = weak_from_this();
    dht->put_value(version_record_key(series_id(series)), version_record(series, list), left(deadline),
                   [weak, id, addr, list, v](chorus_status st, std::string msg, Bytes data) {
      Entered me(weak);
      if (!me || !me->alive(id)) return;
      // The dht says how many peers took a copy ({"replicas": n}; a dht without it gives nothing).
      std::optional<uint64_t> replicas;
      if (auto d = json::parse(data.begin(), data.end(), nullptr, false);
          d.is_object() && d.contains("replicas") && d["replicas"].is_number_unsigned())
        replicas = d["replicas"].get<uint64_t>();
      // UNAVAILABLE here: stored and signed locally, fewer peers took it than the replication
      // target asked for; the record is served and re-published by the dht, so the put stands.
      if (st != CHORUS_OK && st != CHORUS_E_UNAVAILABLE)
        return me->finish(id, from_dht(st, "ucxi: publishing the version list: " + msg));
      me->index_write([&](Index &ix) { ix.record_versions(addr, list, now_unix_ms()); });
      me->remember_list(series_id(addr.series()), list);
      if (v.deleted) ++me->tombstones; else ++me->versions_stored;
      Outcome o;
      o.meta = {{"address", addr.with_temporal(specific(v.version)).to_string()},
                {"version", v.version},
                {"sha256", v.sha256},
                {"size", v.size},
                {"content_type", v.content_type},
                {"created", chorus::rfc3339_utc_ms(static_cast<int64_t>(v.created_ms))},
                {"created_ms", v.created_ms},
                {"replicated", st == CHORUS_OK && replicas.value_or(1) > 0}};
      if (replicas) o.meta["replicas"] = *replicas;
      me->finish(id, std::move(o));
    });
  }

  // Resolution: list -> version, or an error outcome. meta as get's, without content.
  std::optional<Outcome> resolve_in(const ucxl::Address &addr, const std::vector<VersionRow> &list, uint64_t from,
                                    const VersionRow **row) {
    const NavigateResult r = resolve_version(addr.temporal, list.size(), from);
    if (r.error == NavigateError::kNoVersions) {
      ++not_found;
      return failure(CHORUS_E_NOT_FOUND, "ucxi: no version of " + addr.series() + " exists");
    }
    if (r.error == NavigateError::kOutOfRange) {
      ++out_of_range;
      return failure(CHORUS_E_UCXI_TEMPORAL, "ucxi: " + addr.temporal.text() + " on " + addr.series() + ": " + r.message);
    }
    ++resolved;
    *row = &list[r.version - 1];
    return std::nullopt;
  }

  json meta_of(const ucxl::Address &addr, const VersionRow &v, uint64_t count) const {
    return json{{"address", addr.with_temporal(specific(v.version)).to_string()},
                {"version", v.version},
                {"versions", count},
                {"sha256", v.sha256},
                {"size", v.size},
                {"content_type", v.content_type},
                {"role", v.role},
                {"author", v.author},
                {"created", chorus::rfc3339_utc_ms(static_cast<int64_t>(v.created_ms))},
                {"created_ms", v.created_ms},
                {"deleted", v.deleted}};
  }

  void resolve_then(uint64_t id, uint64_t deadline, const ucxl::Address &addr, uint64_t from, bool fetch) {
    const std::string series = addr.series();
    const std::string sid = series_id(series);
    auto with_list = [weak = weak_from_this(), id, deadline, addr, from, fetch, sid](std::vector<VersionRow> list,
                                                                                      bool fresh) {
      Entered me(weak);
      if (!me) return;
      if (fresh && !list.empty()) {
        me->index_write([&](Index &ix) { ix.record_versions(addr, list, now_unix_ms()); });
        me->remember_list(sid, list);
      }
      const VersionRow *row = nullptr;
      if (auto err = me->resolve_in(addr, list, from, &row)) return me->finish(id, std::move(*err));
      Outcome o;
      o.meta = me->meta_of(addr, *row, list.size());
      if (!fetch) return me->finish(id, std::move(o));
      if (row->deleted) {
        ++me->not_found;
        const bool asked_latest = addr.temporal.type == ucxl::TemporalType::kLatest ||
                                  addr.temporal.type == ucxl::TemporalType::kAny;
        return me->finish(id, failure(CHORUS_E_NOT_FOUND, asked_latest ? "ucxi: " + addr.series() + " was deleted at version " +
                                                                             std::to_string(row->version)
                                                                       : "ucxi: version " + std::to_string(row->version) +
                                                                             " of " + addr.series() + " is a deletion"));
      }
      me->fetch_content(id, deadline, sid, *row, std::move(o));
    };
    // A specific version within a list already seen needs no fetch: versions never change.
    if (addr.temporal.type == ucxl::TemporalType::kSpecific && addr.temporal.count != 0) {
      if (auto list = cached_list(sid, addr.temporal.count)) {
        ++list_cache_hits;
        return with_list(std::move(*list), false);
      }
    }
    fetch_list(id, deadline, series, [with_list](std::vector<VersionRow> list) { with_list(std::move(list), true); });
  }

  void fetch_content(uint64_t id, uint64_t deadline, const std::string &sid, const VersionRow &row, Outcome o) {
    if (auto bytes = cached(row.sha256)) {
      ++cache_hits;
      o.content = *bytes;
      return finish(id, std::move(o));
    }
    ++cache_misses;
    if (expired(id, deadline, "fetching the content")) return;
    std::weak_ptr<Impl> weak = weak_from_this();
    const std::string sha = row.sha256;
    const uint64_t version = row.version;
    dht->retrieve(content_key(sid, sha), left(deadline),
                  [weak, id, sha, version, o = std::move(o)](chorus_status st, std::string msg, Bytes data) mutable {
      Entered me(weak);
      if (!me || !me->alive(id)) return;
      if (st != CHORUS_OK) return me->finish(id, from_dht(st, "ucxi: the content of version " + std::to_string(version) + ": " + msg));
      if (sha256_hex(data.data(), data.size()) != sha)
        return me->finish(id, failure(CHORUS_E_INTERNAL, "ucxi: the content of version " + std::to_string(version) +
                                                             " does not match its SHA-256"));
      auto bytes = std::make_shared<const Bytes>(std::move(data));
      me->remember(sha, bytes);
      o.content = *bytes;
      me->finish(id, std::move(o));
    });
  }
};

ContentStore::ContentStore(std::shared_ptr<Dht> dht, std::shared_ptr<Index> index, Identity self, ContentSettings s)
    : impl_(std::make_shared<Impl>()) {
  if (sodium_init() < 0) throw std::runtime_error("ucxi: libsodium does not initialise");
  impl_->dht = std::move(dht);
  impl_->index = std::move(index);
  impl_->self = std::move(self);
  impl_->s = s;
}

ContentStore::~ContentStore() {
  stop();
  // A DHT completion that is running holds Impl for the length of its call; wait for it, so Impl
  // (and the Dht it owns) is never destroyed on the DHT's thread, where a Dht could not join or
  // release itself. Completions never block, so this is short.
  // When the last owner lets go from inside a `done` (on the DHT's thread), that completion's own
  // hold is not waited for: Impl then goes when the completion returns.
  const long own = running_impl == impl_.get() ? 1 : 0;
  while (impl_.use_count() > 1 + own) std::this_thread::sleep_for(std::chrono::microseconds(200));
}

void ContentStore::stop() { impl_->stop(); }

void ContentStore::put(const ucxl::Address &addr, std::string content_type, std::vector<uint8_t> content,
                       uint32_t timeout_ms, Done done) {
  if (!concrete(addr)) return done(failure(CHORUS_E_INVALID_ARG, "wildcard 'any' not allowed for put", "address"));
  if (addr.temporal.type != ucxl::TemporalType::kLatest)
    return done(failure(CHORUS_E_INVALID_ARG, "put needs the temporal segment *^ (it makes the next version)", "address"));
  if (content.size() > impl_->s.max_content_bytes)
    return done(failure(CHORUS_E_TOO_LARGE, "ucxi: the content has " + std::to_string(content.size()) +
                                                " bytes, more than max_body_bytes (" +
                                                std::to_string(impl_->s.max_content_bytes) + ")"));
  const std::string role = addr.role == "any" ? impl_->self.role : addr.role;
  if (role.empty())
    return done(failure(CHORUS_E_INVALID_ARG, "the address's role is 'any' and this agent has no role", "role"));
  if (content_type.empty()) content_type = "application/octet-stream";
  const uint64_t id = impl_->begin(done);
  if (id == 0) return;
  const uint64_t deadline = impl_->deadline_of(timeout_ms);
  VersionRow v;
  v.sha256 = sha256_hex(content.data(), content.size());
  v.size = content.size();
  v.content_type = std::move(content_type);
  v.role = role;
  v.author = !impl_->self.agent_id.empty() ? impl_->self.agent_id : impl_->self.peer_id;
  const std::string series = addr.series();
  auto content_ptr = std::make_shared<Bytes>(std::move(content));
  impl_->fetch_list(id, deadline, series, [weak = std::weak_ptr<Impl>(impl_), id, deadline, addr, v,
                                           content_ptr](std::vector<VersionRow> list) mutable {
    Entered me(weak);
    if (!me || me->expired(id, deadline, "storing the content")) return;
    v.version = list.size() + 1;
    const std::string sid = series_id(addr.series());
    me->dht->store(content_key(sid, v.sha256), v.role, std::move(*content_ptr), Impl::left(deadline),
                   [weak, id, deadline, addr, v, list = std::move(list)](chorus_status st, std::string msg, Bytes data) mutable {
      Entered me(weak);
      if (!me || !me->alive(id)) return;
      // The only argument of ours the dht can refuse is the role: no recipient, or not a role name.
      if (st == CHORUS_E_INVALID_ARG) return me->finish(id, failure(st, "unknown role '" + v.role + "': " + msg, "role"));
      if (st != CHORUS_OK) return me->finish(id, from_dht(st, "ucxi: storing the content: " + msg));
      if (std::string(data.begin(), data.end()) != v.sha256)
        return me->finish(id, failure(CHORUS_E_INTERNAL, "ucxi: the dht stored the content under another SHA-256"));
      v.created_ms = now_unix_ms();
      me->publish(id, deadline, addr, std::move(list), std::move(v));
    });
  });
}

void ContentStore::remove(const ucxl::Address &addr, uint32_t timeout_ms, Done done) {
  if (!concrete(addr)) return done(failure(CHORUS_E_INVALID_ARG, "wildcard 'any' not allowed for delete", "address"));
  if (addr.temporal.type != ucxl::TemporalType::kLatest)
    return done(failure(CHORUS_E_INVALID_ARG, "delete needs the temporal segment *^ (it makes the next version)", "address"));
  const uint64_t id = impl_->begin(done);
  if (id == 0) return;
  const uint64_t deadline = impl_->deadline_of(timeout_ms);
  impl_->fetch_list(id, deadline, addr.series(), [weak = std::weak_ptr<Impl>(impl_), id, deadline, addr](std::vector<VersionRow> list) {
    Entered me(weak);
    if (!me) return;
    if (list.empty()) return me->finish(id, failure(CHORUS_E_NOT_FOUND, "ucxi: no version of " + addr.series() + " exists"));
    if (list.back().deleted)
      return me->finish(id, failure(CHORUS_E_NOT_FOUND, "ucxi: " + addr.series() + " was deleted at version " +
                                                            std::to_string(list.back().version)));
    VersionRow v;
    v.version = list.size() + 1;
    v.deleted = true;
    v.role = addr.role == "any" ? me->self.role : addr.role;
    v.author = !me->self.agent_id.empty() ? me->self.agent_id : me->self.peer_id;
    v.created_ms = now_unix_ms();
    me->publish(id, deadline, addr, std::move(list), std::move(v));
  });
}

void ContentStore::get(const ucxl::Address &addr, uint64_t from, uint32_t timeout_ms, Done done) {
  if (!concrete(addr)) return done(failure(CHORUS_E_INVALID_ARG, "wildcard 'any' not allowed for get", "address"));
  const uint64_t id = impl_->begin(done);
  if (id == 0) return;
  impl_->resolve_then(id, impl_->deadline_of(timeout_ms), addr, from, true);
}

void ContentStore::resolve(const ucxl::Address &addr, uint64_t from, uint32_t timeout_ms, Done done) {
  if (!concrete(addr)) return done(failure(CHORUS_E_INVALID_ARG, "wildcard 'any' not allowed for navigate", "address"));
  const uint64_t id = impl_->begin(done);
  if (id == 0) return;
  impl_->resolve_then(id, impl_->deadline_of(timeout_ms), addr, from, false);
}

void ContentStore::announce(const ucxl::Address &addr, uint32_t timeout_ms, Done done) {
  if (!concrete(addr)) return done(failure(CHORUS_E_INVALID_ARG, "wildcard 'any' not allowed for announce", "address"));
  const uint64_t id = impl_->begin(done);
  if (id == 0) return;
  const std::string series = addr.series();
  impl_->dht->provide(provider_key(series), Impl::left(impl_->deadline_of(timeout_ms)),
                      [weak = std::weak_ptr<Impl>(impl_), id, addr, series](chorus_status st, std::string msg, Bytes) {
    Entered me(weak);
    if (!me || !me->alive(id)) return;
    if (st != CHORUS_OK) return me->finish(id, from_dht(st, "ucxi: announcing " + series + ": " + msg));
    ++me->announced;
    me->index_write([&](Index &ix) { ix.add_provider(addr, me->self.peer_id, now_unix_ms()); });
    Outcome o;
    o.meta = {{"address", series}, {"peer_id", me->self.peer_id}};
    me->finish(id, std::move(o));
  });
}

void ContentStore::discover(const ucxl::Address &addr, uint32_t timeout_ms, Done done) {
  const std::string series = addr.series();
  const uint64_t id = impl_->begin(done);
  if (id == 0) return;
  if (addr.has_wildcards()) {
    // No key to look up for a pattern: what the index heard (our announcements and others').
    // Answered inline, like a refusal: no network is involved.
    if (!impl_->index) return impl_->finish(id, failure(CHORUS_E_NOT_FOUND, "ucxi: no local index to match " + series + " against"));
    try {
      json providers = json::array(), matches = json::array();
      std::set<std::string> seen;
      for (const SeriesRow &r : impl_->index->match(addr, 1000)) {
        json peers = json::array();
        for (const ProviderRow &p : impl_->index->providers(r.id)) {
          peers.push_back(p.peer_id);
          if (seen.insert(p.peer_id).second) providers.push_back({{"peer_id", p.peer_id}, {"addrs", json::array()}});
        }
        if (!peers.empty()) matches.push_back({{"address", r.address}, {"peer_ids", std::move(peers)}});
      }
      if (providers.empty()) return impl_->finish(id, failure(CHORUS_E_NOT_FOUND, "ucxi: no provider known for " + series));
      Outcome o;
      o.meta = {{"address", series}, {"providers", std::move(providers)}, {"series", std::move(matches)}};
      ++impl_->discovered;
      return impl_->finish(id, std::move(o));
    } catch (const IndexError &e) {
      return impl_->finish(id, failure(CHORUS_E_INTERNAL, e.what()));
    }
  }
  impl_->dht->find_providers(provider_key(series), Impl::left(impl_->deadline_of(timeout_ms)),
                             [weak = std::weak_ptr<Impl>(impl_), id, addr, series](chorus_status st, std::string msg, Bytes data) {
    Entered me(weak);
    if (!me || !me->alive(id)) return;
    json providers = json::array();
    std::set<std::string> seen;
    if (st == CHORUS_OK) {
      const json j = json::parse(data.begin(), data.end(), nullptr, false);
      if (!j.is_array()) return me->finish(id, failure(CHORUS_E_INTERNAL, "ucxi: the dht's provider list is not a JSON array"));
      for (const json &p : j) {
        if (!p.is_object() || !p.contains("peer_id") || !p["peer_id"].is_string()) continue;
        const std::string peer = p["peer_id"].get<std::string>();
        if (!seen.insert(peer).second) continue;
        json addrs = p.contains("addrs") && p["addrs"].is_array() ? p["addrs"] : json::array();
        providers.push_back({{"peer_id", peer}, {"addrs", std::move(addrs)}});
        me->index_write([&](Index &ix) { ix.add_provider(addr, peer, now_unix_ms()); });
      }
    } else if (st != CHORUS_E_NOT_FOUND) {
      return me->finish(id, from_dht(st, "ucxi: finding the providers of " + series + ": " + msg));
    }
    // Providers heard on pubsub that the DHT did not name (yet).
    if (me->index) {
      try {
        for (const ProviderRow &p : me->index->providers(series_id(series)))
          if (seen.insert(p.peer_id).second) providers.push_back({{"peer_id", p.peer_id}, {"addrs", json::array()}});
      } catch (const IndexError &) {
        ++me->index_errors;
      }
    }
    if (providers.empty()) return me->finish(id, failure(CHORUS_E_NOT_FOUND, "ucxi: no provider of " + series + " found"));
    ++me->discovered;
    Outcome o;
    o.meta = {{"address", series}, {"providers", std::move(providers)}};
    me->finish(id, std::move(o));
  });
}

Outcome ContentStore::query(const ucxl::Address &pattern, size_t limit) {
  Outcome o;
  json matches = json::array();
  if (impl_->index) {
    try {
      for (const SeriesRow &r : impl_->index->match(pattern, limit))
        matches.push_back({{"address", r.address},
                           {"versions", r.versions},
                           {"latest_sha256", r.latest_sha256},
                           {"updated", chorus::rfc3339_utc_ms(static_cast<int64_t>(r.updated_ms))}});
    } catch (const IndexError &e) {
      return failure(CHORUS_E_INTERNAL, e.what());
    }
  }
  o.meta = {{"pattern", pattern.to_string()}, {"matches", std::move(matches)}};
  return o;
}

void ContentStore::note_remote(const ucxl::Address &addr, const std::string &peer_id, uint64_t version,
                               const std::string &sha256) {
  impl_->index_write([&](Index &ix) {
    const uint64_t now = now_unix_ms();
    ix.note_version(addr, version, sha256, now);
    if (!peer_id.empty()) ix.add_provider(addr, peer_id, now);
  });
}

nlohmann::json ContentStore::stats() const {
  const Impl &m = *impl_;
  size_t entries = 0;
  std::string index_error;
  {
    std::lock_guard lock(impl_->mu);
    entries = m.lru.size();
    index_error = m.last_index_error;
  }
  json storage = {{"index_ok", m.index_healthy.load()},
                  {"index_errors", m.index_errors.load()},
                  {"series", series_indexed()},
                  {"versions_stored", m.versions_stored.load()},
                  {"deletions", m.tombstones.load()},
                  {"announced", m.announced.load()}};
  if (m.index) storage["index_path"] = m.index->path();
  if (!index_error.empty()) storage["last_index_error"] = index_error;
  return json{{"storage", std::move(storage)},
              {"cache", {{"entries", entries},
                         {"capacity", m.s.cache_entries},
                         {"hits", m.cache_hits.load()},
                         {"misses", m.cache_misses.load()}}},
              {"resolver", {{"list_fetches", m.list_fetches.load()},
                            {"list_cache_hits", m.list_cache_hits.load()},
                            {"not_found", m.not_found.load()},
                            {"discovered", m.discovered.load()}}},
              {"navigator", {{"resolved", m.resolved.load()}, {"out_of_range", m.out_of_range.load()}}}};
}

bool ContentStore::index_ok() const { return impl_->index_healthy.load(); }

uint64_t ContentStore::series_indexed() const {
  if (!impl_->index) return 0;
  try {
    return impl_->index->series_count();
  } catch (const IndexError &) {
    return 0;
  }
}

}  // namespace chorus::ucxi
