// The mdns plugin: zero-configuration peer discovery over multicast DNS (libp2p discovery/mdns.md).
//
// One Boost.Asio thread owns the sockets, the mDNS engine, the peer table and the dial queue. The
// p2p host's callbacks (connect results, connection events) arrive on the p2p thread and are posted
// here; the discovery service's subscribers are called from here. See README.md for the behaviour.
#include <atomic>
#include <chrono>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chorus/plugin.hpp>
#include <chorus/services/backbeat_v1.h>
#include <chorus/services/discovery_v1.h>
#include <chorus/services/p2p_host_v1.h>
#include <nlohmann/json.hpp>

#include "engine.hpp"
#include "settings.hpp"
#include "transport.hpp"

namespace chorus::mdns {
namespace {

namespace asio = boost::asio;
using json = nlohmann::json;
using P2P = chorus::ServiceRef<chorus_p2p_host_v1>;
using Backbeat = chorus::ServiceRef<chorus_backbeat_v1>;

std::string join(const std::vector<std::string> &v) {
  std::string s;
  for (const auto &x : v) s += (s.empty() ? "" : " ") + x;
  return s;
}

struct Metrics {
  chorus::Counter discovered, connections, dropped, packets, bad_packets;
  chorus::Gauge peers, last_discovery, interfaces;
};

// Everything that lives while the plugin runs. Held by shared_ptr so late p2p callbacks can tell
// whether it still exists (weak_ptr).
class Core : public std::enable_shared_from_this<Core> {
 public:
  Core(chorus::Host &host, Settings s, Metrics &m, P2P p2p, Backbeat bb)
      : host_(host), s_(std::move(s)), m_(m), p2p_(std::move(p2p)), bb_(std::move(bb)),
        rng_(std::random_device{}()),
        engine_(s_.service_tag, Engine::random_peer_name(rng_), s_.ttl_s),
        table_(p2p::PeerId(), s_.max_peers),
        packet_limit_(s_.packets_per_second, 2.0 * s_.packets_per_second),
        transport_(io_, static_cast<uint16_t>(s_.port), s_.ipv4, s_.ipv6, s_.interfaces,
                   [this](const uint8_t *d, size_t n, const asio::ip::udp::endpoint &from) { on_packet(d, n, from); }),
        query_timer_(io_), announce_timer_(io_), scan_timer_(io_), house_timer_(io_), respond_timer_(io_),
        retry_timer_(io_) {}

  void start() {
    uint8_t id[64];
    size_t id_len = 0;
    char text[128];
    if (p2p_.table()->local_peer_id(p2p_.self(), id, sizeof id, &id_len, text, sizeof text, nullptr) != CHORUS_OK)
      throw chorus::Error(CHORUS_E_UNAVAILABLE, "mdns: chorus.p2p.host has no local peer id");
    self_text_ = text;
    auto self = p2p::PeerId::from_bytes(p2p::BytesView(id, id_len), nullptr);
    if (!self) throw chorus::Error(CHORUS_E_INTERNAL, "mdns: the local peer id does not parse");
    table_ = PeerTable(*self, s_.max_peers);

    std::string why;
    std::vector<std::string> warnings;
    if (!transport_.open(why, warnings)) throw chorus::Error(CHORUS_E_IO, "mdns: " + why);
    for (const auto &w : warnings) host_.warn("mdns: " + w);
    std::vector<std::string> changes;
    transport_.rescan(changes);
    for (const auto &c : changes) host_.debug("mdns: " + c);
    refresh_addrs();
    m_.interfaces.set(static_cast<double>(transport_.interfaces().size()));

    uint64_t sub = 0;
    if (p2p_.table()->subscribe(p2p_.self(), &Core::on_p2p_event, this, &sub) == CHORUS_OK) p2p_sub_ = sub;

    host_.info("mdns: announcing " + engine_.instance() + " on " + std::to_string(transport_.interfaces().size()) +
               " interface(s), port " + std::to_string(s_.port));
    report_health();
    // Announce twice, one second apart (RFC 6762 8.3), and ask at once: a new agent learns the
    // others from their answers and they learn it from the announcement.
    announce();
    send_query();
    schedule(announce_timer_, 1000, [this] { announce(); });
    schedule_query();
    schedule_scan();
    schedule_housekeeping();
    thread_ = std::thread([this] { io_.run(); });
  }

  void stop() {
    if (p2p_sub_ != 0) p2p_.table()->unsubscribe(p2p_.self(), p2p_sub_);
    p2p_sub_ = 0;
    if (thread_.joinable()) {
      std::promise<void> done;
      asio::post(io_, [this, &done] {
        // Goodbye (TTL 0) so the others drop us at once instead of after the TTL.
        if (engine_.has_addrs()) count_out(transport_.send_multicast(engine_.build_response(0)));
        transport_.close();
        for (auto *t : {&query_timer_, &announce_timer_, &scan_timer_, &house_timer_, &respond_timer_, &retry_timer_})
          t->cancel();
        done.set_value();
      });
      done.get_future().wait_for(std::chrono::seconds(2));
      io_.stop();
      thread_.join();
    }
  }

  // ---- discovery service ----

  chorus_status subscribe(chorus_discovery_fn fn, void *arg, uint64_t *out) {
    if (fn == nullptr) return CHORUS_E_INVALID_ARG;
    std::vector<PeerEntry> now;
    {
      std::lock_guard<std::mutex> lk(table_mu_);
      for (const auto &[id, e] : table_.peers()) now.push_back(e);
    }
    std::lock_guard<std::recursive_mutex> lk(subs_mu_);
    const uint64_t id = ++last_sub_;
    for (const auto &e : now) call_one(fn, arg, CHORUS_DISCOVERY_PEER_FOUND, e);
    subs_.push_back({id, fn, arg});
    if (out != nullptr) *out = id;
    return CHORUS_OK;
  }

  chorus_status unsubscribe(uint64_t id) {
    std::lock_guard<std::recursive_mutex> lk(subs_mu_);
    for (auto &s : subs_)
      if (s.id == id) s.fn = nullptr;  // erased after the current dispatch, if any
    if (dispatch_depth_ == 0) std::erase_if(subs_, [](const Sub &s) { return s.fn == nullptr; });
    return CHORUS_OK;
  }

  std::string list_json() {
    json arr = json::array();
    const uint64_t now = host_.now_ms();
    std::lock_guard<std::mutex> lk(table_mu_);
    for (const auto &[id, e] : table_.peers()) {
      arr.push_back({{"peer_id", e.id_text},
                     {"addrs", e.addrs},
                     {"instance", e.instance},
                     {"ttl_remaining_ms", e.expires_ms > now ? e.expires_ms - now : 0},
                     {"first_seen_ms_ago", now - std::min(now, e.first_seen_ms)},
                     {"last_seen_ms_ago", now - std::min(now, e.last_seen_ms)},
                     {"connected", p2p_.table()->is_connected(p2p_.self(), id.bytes().data(), id.bytes().size()) != 0}});
    }
    return arr.dump();
  }

  json status_json() {
    json j = {{"service", engine_.service()}, {"instance", engine_.instance()}, {"peer_id", self_text_}};
    std::lock_guard<std::mutex> lk(table_mu_);
    j["peers"] = table_.size();
    return j;
  }

 private:
  struct Sub {
    uint64_t id;
    chorus_discovery_fn fn;
    void *arg;
  };

  template <class F>
  void schedule(asio::steady_timer &t, uint64_t ms, F fn) {
    t.expires_after(std::chrono::milliseconds(ms));
    t.async_wait([fn](const boost::system::error_code &ec) {
      if (!ec) fn();
    });
  }

  void schedule_query() {
    // Jitter +-10 % so agents started together do not query in lock step.
    std::uniform_int_distribution<uint64_t> j(s_.query_interval_ms * 9 / 10, s_.query_interval_ms * 11 / 10);
    schedule(query_timer_, j(rng_), [this] {
      send_query();
      schedule_query();
    });
  }

  void schedule_scan() {
    schedule(scan_timer_, s_.interface_scan_ms, [this] {
      std::vector<std::string> changes;
      const auto joined = transport_.rescan(changes);
      for (const auto &c : changes) host_.info("mdns: " + c);
      const bool addrs_changed = refresh_addrs();
      m_.interfaces.set(static_cast<double>(transport_.interfaces().size()));
      if (!joined.empty() || addrs_changed) {
        announce();
        send_query();
      }
      report_health();
      schedule_scan();
    });
  }

  void schedule_housekeeping() {
    schedule(house_timer_, 1000, [this] {
      std::vector<PeerEntry> gone;
      {
        std::lock_guard<std::mutex> lk(table_mu_);
        gone = table_.expire(host_.now_ms());
        m_.peers.set(static_cast<double>(table_.size()));
      }
      for (const auto &e : gone) {
        host_.info("mdns: peer " + e.id_text + " expired (no answer within its TTL)");
        dispatch(CHORUS_DISCOVERY_PEER_LOST, e);
      }
      schedule_housekeeping();
    });
  }

  // Our addresses from the p2p host, as dnsaddr strings. Returns true when they changed.
  bool refresh_addrs() {
    chorus_buf buf{};
    chorus::ErrorBuffer err;
    if (p2p_.table()->get_info_json(p2p_.self(), &buf, err.get()) != CHORUS_OK) return false;
    json info = json::parse(std::string_view(buf.data, buf.len), nullptr, false);
    if (buf.release != nullptr) buf.release(&buf);
    std::vector<std::string> addrs;
    if (info.is_object() && info["addrs"].is_array())
      for (const auto &a : info["addrs"])
        if (a.is_string()) addrs.push_back(a.get<std::string>() + "/p2p/" + self_text_);
    if (addrs == own_addrs_) return false;
    own_addrs_ = addrs;
    const size_t kept = engine_.set_addrs(addrs);
    host_.debug("mdns: advertising " + std::to_string(kept) + " address(es): " + join(addrs));
    return true;
  }

  void count_out(size_t n) {
    if (n > 0) m_.packets.add("out", static_cast<double>(n));
  }

  void announce() {
    if (!engine_.has_addrs()) return;
    const uint64_t errors = transport_.send_errors();
    count_out(transport_.send_multicast(engine_.build_response(s_.ttl_s)));
    // A datagram that could not leave (typically IPv6 while the link-local address is still in
    // duplicate address detection, ~2 s after a link comes up) is announced again a second later.
    if (transport_.send_errors() > errors && announce_retries_ < 5) {
      ++announce_retries_;
      schedule(retry_timer_, 1000, [this] { announce(); });
    } else if (transport_.send_errors() == errors) {
      announce_retries_ = 0;
    }
  }

  void send_query() {
    // Known answers: peers we are connected to and whose records have more than half their TTL left.
    // Peers we failed to reach are left out on purpose, so they answer again and we retry the dial.
    std::vector<std::pair<std::string, uint32_t>> known;
    const uint64_t now = host_.now_ms();
    {
      std::lock_guard<std::mutex> lk(table_mu_);
      for (const auto &[id, e] : table_.peers()) {
        const uint64_t left_s = e.expires_ms > now ? (e.expires_ms - now) / 1000 : 0;
        if (left_s <= s_.ttl_s / 2) continue;
        if (p2p_.table()->is_connected(p2p_.self(), id.bytes().data(), id.bytes().size()) == 0) continue;
        known.emplace_back(e.instance, static_cast<uint32_t>(left_s));
      }
    }
    count_out(transport_.send_multicast(engine_.build_query(known)));
  }

  void report_health() {
    const size_t n = transport_.interfaces().size();
    if (n == 0)
      host_.report_health(chorus::Health::degraded, "no multicast-capable interface is up");
    else if (!engine_.has_addrs())
      host_.report_health(chorus::Health::degraded, "the p2p host has no address to advertise");
    else
      host_.report_health(chorus::Health::ok, std::to_string(n) + " interface(s), " + std::to_string(table_size()) +
                                                  " discovered peer(s)");
  }

  size_t table_size() {
    std::lock_guard<std::mutex> lk(table_mu_);
    return table_.size();
  }

  void on_packet(const uint8_t *data, size_t n, const asio::ip::udp::endpoint &from) {
    const uint64_t now = host_.now_ms();
    if (!packet_limit_.take(now)) {
      m_.bad_packets.inc("rate_limited");
      return;
    }
    m_.packets.add("in", 1);
    std::string why;
    const PacketResult r = engine_.handle(std::span<const uint8_t>(data, n), from.port(), static_cast<uint16_t>(s_.port), &why);
    if (!why.empty()) {
      m_.bad_packets.inc("malformed");
      if (host_.log_enabled(chorus::LogLevel::debug))
        host_.debug("mdns: dropped a malformed packet from " + from.address().to_string() + ": " + why);
      return;
    }
    if (r.answer_unicast) {
      if (transport_.send_to(engine_.build_response(s_.ttl_s, r.query_id), from)) count_out(1);
    } else if (r.answer_multicast && !respond_pending_) {
      if (host_.log_enabled(chorus::LogLevel::trace))
        host_.trace("mdns: answering a query from " + from.address().to_string());
      respond_pending_ = true;
      const uint32_t hi = s_.response_delay_max_ms, lo = std::min<uint32_t>(20, hi);
      std::uniform_int_distribution<uint32_t> d(lo, hi);
      schedule(respond_timer_, d(rng_), [this] {
        respond_pending_ = false;
        announce();
      });
    }
    std::string source = from.address().to_string();
    if (from.address().is_v6() && from.address().to_v6().is_v4_mapped())
      source = asio::ip::make_address_v4(asio::ip::v4_mapped, from.address().to_v6()).to_string();
    for (const auto &a : r.announcements) apply(a, source, now);
  }

  void apply(const Announcement &a, const std::string &source, uint64_t now) {
    const PeerEntry *entry = nullptr;
    PeerEntry removed, copy;
    std::string why;
    ApplyOutcome o;
    {
      std::lock_guard<std::mutex> lk(table_mu_);
      o = table_.apply(a, source, now, &entry, &removed, &why);
      if (entry != nullptr) copy = *entry;
      m_.peers.set(static_cast<double>(table_.size()));
    }
    switch (o) {
      case ApplyOutcome::found:
        m_.discovered.inc();
        m_.last_discovery.set(static_cast<double>(std::chrono::duration_cast<std::chrono::seconds>(
                                                      std::chrono::system_clock::now().time_since_epoch())
                                                      .count()));
        host_.info("mdns: discovered peer " + copy.id_text + " at " + join(copy.addrs));
        consider_dial(copy);  // first, so subscribers hear of the peer after the plugin acted on it
        dispatch(CHORUS_DISCOVERY_PEER_FOUND, copy, a.ttl);
        break;
      case ApplyOutcome::changed:
        host_.debug("mdns: peer " + copy.id_text + " now at " + join(copy.addrs));
        consider_dial(copy);
        dispatch(CHORUS_DISCOVERY_PEER_FOUND, copy, a.ttl);
        break;
      case ApplyOutcome::refreshed:
        consider_dial(copy);
        break;
      case ApplyOutcome::lost:
        host_.info("mdns: peer " + removed.id_text + " said goodbye");
        dispatch(CHORUS_DISCOVERY_PEER_LOST, removed);
        break;
      case ApplyOutcome::table_full:
        m_.dropped.inc("table_full");
        break;
      case ApplyOutcome::invalid:
        m_.bad_packets.inc("invalid_record");
        if (host_.log_enabled(chorus::LogLevel::debug))
          host_.debug("mdns: ignored announcement of " + a.instance + " from " + source + ": " + why);
        break;
      case ApplyOutcome::self:
      case ApplyOutcome::ignored:
        break;
    }
  }

  // ---- dialing (CHORUS's handleDiscoveredPeers; docs/contract.md, CHORUS defaults the plugins adopt) ----

  bool connected(const p2p::PeerId &id) {
    return p2p_.table()->is_connected(p2p_.self(), id.bytes().data(), id.bytes().size()) != 0;
  }

  void consider_dial(const PeerEntry &e) {
    if (!s_.auto_connect) return;
    if (queued_.count(e.id) != 0 || in_flight_.count(e.id) != 0) return;
    if (connected(e.id)) return;  // skip already-connected peers
    if (queue_.size() >= s_.queue_size) {
      m_.dropped.inc("queue_full");
      host_.debug("mdns: discovery queue full, skipping peer " + e.id_text + " (retried on its next announcement)");
      return;
    }
    queue_.push_back(e.id);
    queued_.insert(e.id);
    pump();
  }

  struct DialCtx {
    std::weak_ptr<Core> core;
    Core *raw;
    p2p::PeerId id;
    std::string text;
    std::string op_id;
  };

  void pump() {
    while (in_flight_.size() < s_.max_concurrent_connects && !queue_.empty()) {
      const p2p::PeerId id = queue_.front();
      queue_.pop_front();
      queued_.erase(id);
      std::vector<std::string> addrs;
      std::string text;
      {
        std::lock_guard<std::mutex> lk(table_mu_);
        const PeerEntry *e = table_.find(id);
        if (e == nullptr) continue;  // said goodbye meanwhile
        addrs = e->addrs;
        text = e->id_text;
      }
      if (connected(id)) continue;
      std::vector<const char *> ptrs;
      for (const auto &a : addrs) ptrs.push_back(a.c_str());
      chorus::ErrorBuffer err;
      p2p_.table()->add_addrs(p2p_.self(), id.bytes().data(), id.bytes().size(), ptrs.data(), ptrs.size(),
                              static_cast<uint64_t>(s_.ttl_s) * 1000, err.get());
      auto *ctx = new DialCtx{weak_from_this(), this, id, text, "mdns-" + text + "-" + std::to_string(++dial_seq_)};
      start_operation(ctx->op_id);
      chorus::ErrorBuffer err2;
      const chorus_status st = p2p_.table()->connect(p2p_.self(), text.c_str(), text.size(), s_.connect_timeout_ms,
                                                     &Core::on_connect, ctx, err2.get());
      if (st != CHORUS_OK) {
        finish_dial(id, text, ctx->op_id, st, std::string(err2.text()));
        delete ctx;
        continue;
      }
      in_flight_.insert(id);
    }
  }

  static void on_connect(void *arg, chorus_status status, const char *, const chorus_error *err) {
    std::unique_ptr<DialCtx> ctx(static_cast<DialCtx *>(arg));
    auto core = ctx->core.lock();
    if (!core) return;
    std::string why = err != nullptr ? std::string(err->message) : std::string();
    Core *c = ctx->raw;
    asio::post(c->io_, [c, id = ctx->id, text = ctx->text, op = ctx->op_id, status, why] {
      c->in_flight_.erase(id);
      c->finish_dial(id, text, op, status, why);
      c->pump();
    });
  }

  void finish_dial(const p2p::PeerId &, const std::string &text, const std::string &op, chorus_status st,
                   const std::string &why) {
    if (st == CHORUS_OK) {
      m_.connections.inc("ok");
      host_.info("mdns: connected to discovered peer " + text);
      if (bb_) bb_.table()->complete_operation(bb_.self(), op.data(), op.size(), static_cast<uint32_t>(table_size()), nullptr);
    } else {
      m_.connections.inc("failed");
      host_.warn("mdns: failed to connect to peer " + text + ": " + why + " (retried on its next announcement)");
      if (bb_) bb_.table()->fail_operation(bb_.self(), op.data(), op.size(), why.data(), why.size(), nullptr);
    }
  }

  // The BACKBEAT guideline gives peer discovery 2-5 beats (docs/protocols.md, BACKBEAT operations);
  // a dial that has not finished within the upper bound is reported as over budget.
  static constexpr uint32_t kDialBudgetBeats = 5;

  void start_operation(const std::string &op) {
    if (!bb_) return;
    chorus::ErrorBuffer err;
    const std::string type = CHORUS_BACKBEAT_OP_PEER_DISCOVERY;
    if (bb_.table()->start_operation(bb_.self(), op.data(), op.size(), type.data(), type.size(), kDialBudgetBeats,
                                     nullptr, 0, err.get()) == CHORUS_OK)
      bb_.table()->update_phase(bb_.self(), op.data(), op.size(), CHORUS_BACKBEAT_PHASE_CONNECTING,
                                static_cast<uint32_t>(table_size()), nullptr);
  }

  static void on_p2p_event(void *arg, const chorus_p2p_event *ev) {
    // A discovered peer that disconnects is dialed again on its next announcement; nothing to do
    // now but keep the log readable.
    auto *c = static_cast<Core *>(arg);
    if (ev == nullptr || ev->type != CHORUS_P2P_EVENT_DISCONNECTED || ev->peer_text == nullptr) return;
    if (c->host_.log_enabled(chorus::LogLevel::debug)) c->host_.debug(std::string("mdns: peer ") + ev->peer_text + " disconnected");
  }

  // ---- subscribers ----

  void call_one(chorus_discovery_fn fn, void *arg, uint32_t type, const PeerEntry &e, uint32_t ttl = 0) {
    std::vector<const char *> ptrs;
    for (const auto &a : e.addrs) ptrs.push_back(a.c_str());
    chorus_discovery_event ev{};
    ev.struct_size = sizeof ev;
    ev.type = type;
    ev.peer = e.id.bytes().data();
    ev.peer_len = e.id.bytes().size();
    ev.peer_text = e.id_text.c_str();
    ev.addrs = ptrs.data();
    ev.addr_count = ptrs.size();
    ev.source = "mdns";
    ev.ttl_s = type == CHORUS_DISCOVERY_PEER_FOUND ? (ttl != 0 ? ttl : s_.ttl_s) : 0;
    fn(arg, &ev);
  }

  void dispatch(uint32_t type, const PeerEntry &e, uint32_t ttl = 0) {
    std::lock_guard<std::recursive_mutex> lk(subs_mu_);
    ++dispatch_depth_;
    for (size_t i = 0; i < subs_.size(); ++i) {
      const Sub s = subs_[i];
      if (s.fn != nullptr) call_one(s.fn, s.arg, type, e, ttl);
    }
    if (--dispatch_depth_ == 0) std::erase_if(subs_, [](const Sub &s) { return s.fn == nullptr; });
  }

  chorus::Host &host_;
  Settings s_;
  Metrics &m_;
  P2P p2p_;
  Backbeat bb_;
  std::mt19937_64 rng_;
  Engine engine_;
  std::mutex table_mu_;  // table_ is read by HTTP and service threads
  PeerTable table_;
  RateLimiter packet_limit_;
  asio::io_context io_;
  Transport transport_;
  asio::steady_timer query_timer_, announce_timer_, scan_timer_, house_timer_, respond_timer_, retry_timer_;
  int announce_retries_ = 0;
  std::thread thread_;
  std::string self_text_;
  std::vector<std::string> own_addrs_;
  uint64_t p2p_sub_ = 0;
  bool respond_pending_ = false;
  std::deque<p2p::PeerId> queue_;
  std::set<p2p::PeerId> queued_, in_flight_;
  uint64_t dial_seq_ = 0;

  std::recursive_mutex subs_mu_;
  std::vector<Sub> subs_;
  uint64_t last_sub_ = 0;
  int dispatch_depth_ = 0;
};

class MdnsPlugin final : public chorus::Plugin {
 public:
  MdnsPlugin(chorus::Host &host, std::string_view config_json) : host_(host) {
    try {
      settings_ = parse_settings(config_json);
    } catch (const std::invalid_argument &e) {
      throw chorus::Error(CHORUS_E_CONFIG, e.what());
    }
    m_.discovered = host_.counter("chorus_mdns_peers_discovered_total", "Peers discovered for the first time (CHORUS: PeersDiscovered)");
    m_.connections = host_.counter("chorus_mdns_connections_total",
                                   "Dials of discovered peers, by result (CHORUS: ConnectionsSuccess/ConnectionsFailed)", {"result"});
    m_.dropped = host_.counter("chorus_mdns_discoveries_dropped_total",
                               "Discovered peers not queued, by reason (queue_full, table_full)", {"reason"});
    m_.packets = host_.counter("chorus_mdns_packets_total", "mDNS datagrams, by direction", {"direction"});
    m_.bad_packets = host_.counter("chorus_mdns_packets_rejected_total",
                                   "Incoming packets or records ignored, by reason (malformed, rate_limited, invalid_record)",
                                   {"reason"});
    m_.peers = host_.gauge("chorus_mdns_peers", "Discovered peers currently tracked");
    m_.last_discovery = host_.gauge("chorus_mdns_last_discovery_timestamp_seconds",
                                    "Unix time of the last new discovery (CHORUS: LastDiscovery)");
    m_.interfaces = host_.gauge("chorus_mdns_interfaces", "Interfaces joined to the mDNS group");
    try {
      host_.route("GET", "/mdns/peers", [this](const chorus::HttpRequest &, chorus::HttpExchange ex) {
        auto c = core();
        if (!c) {
          ex.respond(503, "application/json", R"({"error":"mdns is not running"})");
          return;
        }
        ex.respond(200, "application/json", c->list_json());
      });
    } catch (const chorus::Error &e) {
      if (e.code() != CHORUS_E_UNAVAILABLE) throw;
    }
    table_.struct_size = sizeof table_;
    table_.subscribe = &c_subscribe;
    table_.unsubscribe = &c_unsubscribe;
    table_.list_peers_json = &c_list;
  }

  ~MdnsPlugin() override { stop_core(); }

  void start() override {
    auto p2p = host_.acquire<chorus_p2p_host_v1>(CHORUS_P2P_HOST_SERVICE, "^1");
    if (!p2p.has<&chorus_p2p_host_v1::connect>() || !p2p.has<&chorus_p2p_host_v1::get_info_json>() ||
        !p2p.has<&chorus_p2p_host_v1::add_addrs>() || !p2p.has<&chorus_p2p_host_v1::is_connected>())
      throw chorus::Error(CHORUS_E_VERSION, "mdns: the chorus.p2p.host provider lacks connect/get_info_json/add_addrs/is_connected");
    Backbeat bb = host_.try_acquire<chorus_backbeat_v1>(CHORUS_BACKBEAT_SERVICE, "^1");
    if (bb) host_.debug("mdns: BACKBEAT present, tracking peer_discovery operations");
    auto c = std::make_shared<Core>(host_, settings_, m_, std::move(p2p), std::move(bb));
    c->start();
    std::lock_guard<std::mutex> lk(mu_);
    core_ = std::move(c);
  }

  void stop(std::chrono::milliseconds) override { stop_core(); }

  chorus::ServiceTable service(std::string_view name, uint16_t major) override {
    if (name == CHORUS_DISCOVERY_SERVICE && major == 1) return {&table_, this};
    return Plugin::service(name, major);
  }

 private:
  std::shared_ptr<Core> core() {
    std::lock_guard<std::mutex> lk(mu_);
    return core_;
  }

  void stop_core() {
    std::shared_ptr<Core> c;
    {
      std::lock_guard<std::mutex> lk(mu_);
      c = std::move(core_);
    }
    if (c) c->stop();
  }

  static MdnsPlugin *self(void *p) { return static_cast<MdnsPlugin *>(p); }

  static chorus_status c_subscribe(void *p, chorus_discovery_fn fn, void *arg, uint64_t *out) noexcept {
    return chorus::guard(nullptr, [&]() -> chorus_status {
      auto c = self(p)->core();
      return c ? c->subscribe(fn, arg, out) : CHORUS_E_UNAVAILABLE;
    });
  }
  static chorus_status c_unsubscribe(void *p, uint64_t sub) noexcept {
    return chorus::guard(nullptr, [&]() -> chorus_status {
      auto c = self(p)->core();
      return c ? c->unsubscribe(sub) : CHORUS_OK;
    });
  }
  static chorus_status c_list(void *p, chorus_buf *out, chorus_error *err) noexcept {
    return chorus::guard(err, [&]() -> chorus_status {
      auto c = self(p)->core();
      if (!c) return CHORUS_E_UNAVAILABLE;
      return chorus::give_buf(c->list_json(), out);
    });
  }

  chorus::Host &host_;
  Settings settings_;
  Metrics m_;
  std::mutex mu_;
  std::shared_ptr<Core> core_;
  chorus_discovery_v1 table_{};
};

constexpr chorus_provide kProvides[] = {chorus::provide(CHORUS_DISCOVERY_SERVICE, 1, 0)};
constexpr chorus_require kRequires[] = {
    chorus::require(CHORUS_P2P_HOST_SERVICE, "^1"),
    chorus::require(CHORUS_BACKBEAT_SERVICE, "^1", CHORUS_REQUIRE_OPTIONAL),
};

}  // namespace
}  // namespace chorus::mdns

CHORUS_PLUGIN(chorus::mdns::MdnsPlugin, .id = "mdns", .version = "0.1.0",
              .description = "Zero-configuration peer discovery over multicast DNS (chorus.discovery v1)",
              .vendor = "CHORUS", .provides = chorus::mdns::kProvides, .requirements = chorus::mdns::kRequires,
              .config_schema = chorus::mdns::kConfigSchema);
