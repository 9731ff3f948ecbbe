#include "protocols/identify.hpp"

#include <nlohmann/json.hpp>

#include "clock.hpp"
#include "connection.hpp"
#include "node_impl.hpp"
#include "wire/varint.hpp"

namespace chorus::p2p {

using json = nlohmann::json;

namespace {

// Answering side: one length-prefixed Identify went out when the stream was accepted; then FIN.
class IdentifyServerSink final : public StreamSink {
 public:
  void data(Stream &, BytesView) override {}
  void closed(Stream &, chorus_status, const std::string &) override {}
};

// Asking side (and /ipfs/id/push/1.0.0 inbound): read length-prefixed Identify messages until EOF
// and merge them (go splits big answers in two).
class IdentifyReaderSink final : public StreamSink {
 public:
  IdentifyReaderSink(NodeImpl &node, IdentifyService &service) : node_(node), service_(service), reader_(8 * 1024) {}
  void data(Stream &s, BytesView b) override {
    if (failed_) return;
    while (!b.empty()) {
      BytesView msg;
      const auto st = reader_.next(b, msg, scratch_);
      if (st == LpStatus::need_more) break;
      if (st != LpStatus::message || ++count_ > 10) {
        fail(s, st == LpStatus::too_large ? "identify message larger than 8 KiB" : "malformed identify message");
        return;
      }
      std::string why;
      if (!msg_.merge_from(msg, &why)) {
        fail(s, "bad identify message: " + why);
        return;
      }
    }
  }
  void eof(Stream &s) override {
    if (failed_) return;
    Connection *c = s.conn;
    service_.received(*c, std::move(msg_));
    c->stream_close_write(s);
  }
  void closed(Stream &, chorus_status, const std::string &) override {}

 private:
  void fail(Stream &s, const std::string &why) {
    failed_ = true;
    node_.stats().protocol_errors++;
    node_.logf(CHORUS_LOG_DEBUG, "identify from " + s.conn->peer().to_base58() + ": " + why);
    s.conn->stream_reset(s, CHORUS_E_PROTOCOL, why);
  }
  NodeImpl &node_;
  IdentifyService &service_;
  LpReader reader_;
  Bytes scratch_;
  IdentifyMessage msg_;
  int count_ = 0;
  bool failed_ = false;
};

}  // namespace

void IdentifyService::ask(Connection &c) {
  const PeerId peer = c.peer();
  auto sink = std::make_unique<IdentifyReaderSink>(node_, *this);
  std::string why;
  OpenRequest req{std::move(sink), [this, peer](chorus_status st, Stream *, const std::string &reason) {
                    if (st != CHORUS_OK)
                      node_.logf(CHORUS_LOG_DEBUG, "identify of " + peer.to_base58() + " failed: " + reason);
                  }};
  Stream *s = nullptr;
  if (c.open_stream({kIdentifyProtocol}, req, 0, why, &s, true) && s != nullptr)
    c.stream_close_write(*s);  // the asker sends nothing
}

std::unique_ptr<StreamSink> IdentifyService::accept(Stream &s) {
  if (s.protocol == kIdentifyProtocol) {
    Bytes msg;
    append_lp(msg, message_for(*s.conn).encode());
    s.conn->internal_write(s, msg);
    s.conn->stream_close_write(s);
    return std::make_unique<IdentifyServerSink>();
  }
  if (s.protocol == kIdentifyPushProtocol) return std::make_unique<IdentifyReaderSink>(node_, *this);
  return nullptr;
}

IdentifyMessage IdentifyService::message_for(const Connection &c) const {
  IdentifyMessage m;
  m.protocol_version = "ipfs/0.1.0";
  m.agent_version = node_.settings().agent_version;
  m.public_key = node_.identity().public_key_protobuf();
  for (const auto &a : node_.advertised_addrs())
    if (auto ma = Multiaddr::parse(a, nullptr)) m.listen_addrs.push_back(ma->bytes());
  m.observed_addr = c.remote_addr().without_peer_id().bytes();
  m.protocols = node_.supported_protocols();
  return m;
}

void IdentifyService::received(Connection &c, IdentifyMessage msg) {
  // The answer must carry the key of the peer we authenticated in Noise.
  if (msg.public_key) {
    const PeerId claimed = PeerId::from_public_key(*msg.public_key);
    if (!(claimed == c.peer())) {
      node_.stats().protocol_errors++;
      node_.logf(CHORUS_LOG_WARN, "identify from " + c.peer().to_base58() + " carries another peer's key; ignored");
      return;
    }
  }
  PeerRecord *rec = node_.peerstore().find(c.peer());
  if (rec == nullptr) return;
  if (!msg.listen_addrs.empty())
    node_.peerstore().set_identified_addrs(*rec, msg.listen_addrs, monotonic_ms() + 3600 * 1000);
  if (rec->identify) {  // a push: merge over what we knew
    auto &old = *rec->identify;
    if (msg.protocol_version) old.protocol_version = msg.protocol_version;
    if (msg.agent_version) old.agent_version = msg.agent_version;
    if (!msg.listen_addrs.empty()) old.listen_addrs = msg.listen_addrs;
    if (!msg.protocols.empty()) old.protocols = msg.protocols;
  } else {
    rec->identify = std::move(msg);
  }
  const auto &m = *rec->identify;
  json j = {{"agent_version", m.agent_version.value_or("")},
            {"protocol_version", m.protocol_version.value_or("")},
            {"protocols", m.protocols},
            {"listen_addrs", json::array()}};
  for (const auto &a : m.listen_addrs)
    if (auto ma = Multiaddr::from_bytes(a, nullptr)) j["listen_addrs"].push_back(ma->to_string());
  const std::string text = j.dump(-1, ' ', false, json::error_handler_t::replace);
  node_.logf(CHORUS_LOG_DEBUG, "identified " + c.peer().to_base58() + ": " + text);
  node_.emit(CHORUS_P2P_EVENT_IDENTIFIED, c.peer(), &c, &text);
}

}  // namespace chorus::p2p
