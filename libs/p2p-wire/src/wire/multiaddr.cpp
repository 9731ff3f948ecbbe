#include "wire/multiaddr.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

#include "wire/varint.hpp"

namespace chorus::p2p {
namespace {

constexpr int kVariable = -1;
constexpr size_t kMaxMultiaddrText = 4096;

struct Protocol {
  uint32_t code;
  const char *name;
  int size;  // value size in bytes, 0 for none, kVariable for uvarint(len) || bytes
};

constexpr Protocol kProtocols[] = {
    {kMaIp4, "ip4", 4},           {kMaTcp, "tcp", 2},           {kMaUdp, "udp", 2},
    {kMaIp6, "ip6", 16},          {kMaIp6Zone, "ip6zone", kVariable}, {kMaDns, "dns", kVariable},
    {kMaDns4, "dns4", kVariable}, {kMaDns6, "dns6", kVariable}, {kMaDnsaddr, "dnsaddr", kVariable},
    {kMaP2p, "p2p", kVariable},   {kMaQuicV1, "quic-v1", 0},    {kMaWs, "ws", 0},
    {kMaP2pCircuit, "p2p-circuit", 0},
};

const Protocol *protocol_by_code(uint64_t code) {
  for (const auto &p : kProtocols)
    if (p.code == code) return &p;
  return nullptr;
}

const Protocol *protocol_by_name(std::string_view name) {
  if (name == "ipfs") name = "p2p";
  for (const auto &p : kProtocols)
    if (name == p.name) return &p;
  return nullptr;
}

std::optional<Multiaddr> fail(std::string *why, std::string msg) {
  if (why != nullptr) *why = "multiaddr: " + std::move(msg);
  return std::nullopt;
}

// Checks a variable-length value so that every accepted binary form has a text form that parses back.
bool valid_variable_value(uint32_t code, BytesView value, std::string &reason) {
  if (code == kMaP2p) {
    std::string why;
    if (!PeerId::from_bytes(value, &why)) {
      reason = "invalid /p2p/ value: " + why;
      return false;
    }
    return true;
  }
  if (value.empty()) {
    reason = "empty value";
    return false;
  }
  for (uint8_t c : value) {
    if (c == '/' || c == 0) {
      reason = c == 0 ? "value contains a NUL byte" : "value contains '/'";
      return false;
    }
  }
  return true;
}

bool parse_port(std::string_view s, uint8_t out[2]) {
  if (s.empty() || s.size() > 5) return false;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v > 65535) return false;
  out[0] = static_cast<uint8_t>(v >> 8);
  out[1] = static_cast<uint8_t>(v);
  return true;
}

}  // namespace

std::optional<Multiaddr> Multiaddr::from_bytes(BytesView in, std::string *why) {
  if (in.empty()) return fail(why, "empty");
  if (in.size() > kMaxMultiaddrBytes) return fail(why, "longer than 1024 bytes");
  BytesView rest = in;
  while (!rest.empty()) {
    uint64_t code = 0;
    size_t used = 0;
    if (read_uvarint(rest, code, used) != VarintStatus::ok) return fail(why, "malformed protocol code");
    rest = rest.subspan(used);
    const Protocol *p = protocol_by_code(code);
    if (p == nullptr) return fail(why, "unknown protocol code " + std::to_string(code));
    if (p->size != kVariable) {
      if (rest.size() < static_cast<size_t>(p->size))
        return fail(why, std::string("truncated /") + p->name + " value");
      rest = rest.subspan(static_cast<size_t>(p->size));
      continue;
    }
    uint64_t len = 0;
    if (read_uvarint(rest, len, used) != VarintStatus::ok)
      return fail(why, std::string("malformed length of /") + p->name + " value");
    rest = rest.subspan(used);
    if (len > rest.size()) return fail(why, std::string("truncated /") + p->name + " value");
    std::string reason;
    if (!valid_variable_value(p->code, rest.first(static_cast<size_t>(len)), reason))
      return fail(why, std::string("/") + p->name + ": " + reason);
    rest = rest.subspan(static_cast<size_t>(len));
  }
  return Multiaddr(Bytes(in.begin(), in.end()));
}

std::optional<Multiaddr> Multiaddr::parse(std::string_view text, std::string *why) {
  if (text.size() > kMaxMultiaddrText) return fail(why, "text longer than 4096 characters");
  if (text.empty() || text[0] != '/') return fail(why, "must start with '/'");
  // A single trailing slash is tolerated ("/ip4/1.2.3.4/tcp/1/").
  if (text.size() > 1 && text.back() == '/') text.remove_suffix(1);
  text.remove_prefix(1);
  if (text.empty()) return fail(why, "empty");

  std::vector<std::string_view> parts;
  while (true) {
    auto slash = text.find('/');
    parts.push_back(text.substr(0, slash));
    if (slash == std::string_view::npos) break;
    text.remove_prefix(slash + 1);
  }

  Bytes out;
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string_view name = parts[i];
    if (name.empty()) return fail(why, "empty path segment");
    const Protocol *p = protocol_by_name(name);
    if (p == nullptr) return fail(why, "unknown protocol '" + std::string(name) + "'");
    append_uvarint(out, p->code);
    if (p->size == 0) continue;
    if (i + 1 >= parts.size()) return fail(why, "missing value for /" + std::string(p->name));
    std::string_view value = parts[++i];
    std::string value_str(value);  // inet_pton wants a NUL-terminated string
    if (value_str.find('\0') != std::string::npos) return fail(why, "NUL byte in /" + std::string(p->name) + " value");
    switch (p->code) {
      case kMaIp4: {
        uint8_t addr[4];
        if (inet_pton(AF_INET, value_str.c_str(), addr) != 1)
          return fail(why, "invalid IPv4 address '" + value_str + "'");
        out.insert(out.end(), addr, addr + 4);
        break;
      }
      case kMaIp6: {
        uint8_t addr[16];
        if (inet_pton(AF_INET6, value_str.c_str(), addr) != 1)
          return fail(why, "invalid IPv6 address '" + value_str + "'");
        out.insert(out.end(), addr, addr + 16);
        break;
      }
      case kMaTcp:
      case kMaUdp: {
        uint8_t port[2];
        if (!parse_port(value, port)) return fail(why, "invalid port '" + value_str + "'");
        out.insert(out.end(), port, port + 2);
        break;
      }
      case kMaP2p: {
        std::string reason;
        auto id = PeerId::parse(value, &reason);
        if (!id) return fail(why, "invalid /p2p/ value: " + reason);
        append_lp(out, id->bytes());
        break;
      }
      default:  // names and zones are carried as-is
        if (value.empty()) return fail(why, "empty value for /" + std::string(p->name));
        append_lp(out, as_bytes(value));
        break;
    }
    if (out.size() > kMaxMultiaddrBytes) return fail(why, "longer than 1024 bytes");
  }
  return from_bytes(out, why);
}

std::vector<Multiaddr::Component> Multiaddr::components() const {
  // bytes_ was validated on construction, so the walk cannot fail.
  std::vector<Component> out;
  BytesView rest(bytes_);
  while (!rest.empty()) {
    uint64_t code = 0, len = 0;
    size_t used = 0;
    read_uvarint(rest, code, used);
    rest = rest.subspan(used);
    const Protocol *p = protocol_by_code(code);
    if (p == nullptr) break;
    if (p->size == kVariable) {
      read_uvarint(rest, len, used);
      rest = rest.subspan(used);
    } else {
      len = static_cast<uint64_t>(p->size);
    }
    if (len > rest.size()) break;
    out.push_back({p->code, rest.first(static_cast<size_t>(len))});
    rest = rest.subspan(static_cast<size_t>(len));
  }
  return out;
}

std::string Multiaddr::to_string() const {
  std::string s;
  for (const Component &c : components()) {
    const Protocol *p = protocol_by_code(c.code);
    s += '/';
    s += p->name;
    if (p->size == 0) continue;
    s += '/';
    switch (c.code) {
      case kMaIp4:
      case kMaIp6: {
        char buf[INET6_ADDRSTRLEN];
        inet_ntop(c.code == kMaIp4 ? AF_INET : AF_INET6, c.value.data(), buf, sizeof buf);
        s += buf;
        break;
      }
      case kMaTcp:
      case kMaUdp:
        s += std::to_string(c.value[0] << 8 | c.value[1]);
        break;
      case kMaP2p: {
        auto id = PeerId::from_bytes(c.value, nullptr);
        s += id ? id->to_base58() : std::string();
        break;
      }
      default:
        s += as_string_view(c.value);
        break;
    }
  }
  return s;
}

std::optional<PeerId> Multiaddr::peer_id() const {
  auto comps = components();
  if (comps.empty() || comps.back().code != kMaP2p) return std::nullopt;
  return PeerId::from_bytes(comps.back().value, nullptr);
}

Multiaddr Multiaddr::without_peer_id() const {
  auto comps = components();
  if (comps.empty() || comps.back().code != kMaP2p) return *this;
  // The last component's value ends the buffer; its header starts before the uvarint length and code.
  size_t value_start = static_cast<size_t>(comps.back().value.data() - bytes_.data());
  size_t header = uvarint_size(kMaP2p) + uvarint_size(comps.back().value.size());
  return Multiaddr(Bytes(bytes_.begin(), bytes_.begin() + static_cast<std::ptrdiff_t>(value_start - header)));
}

Multiaddr Multiaddr::with_peer_id(const PeerId &id) const {
  Bytes b = without_peer_id().bytes_;
  if (id.empty()) return Multiaddr(std::move(b));
  append_uvarint(b, kMaP2p);
  append_lp(b, id.bytes());
  return Multiaddr(std::move(b));
}

std::optional<Multiaddr::TcpTarget> Multiaddr::tcp_target() const {
  auto comps = components();
  size_t i = 0;
  std::string zone;
  if (comps.size() >= 2 && comps[0].code == kMaIp6Zone && comps[1].code == kMaIp6) {
    zone = std::string(as_string_view(comps[0].value));
    i = 1;
  }
  size_t n = comps.size() - i;
  if (n < 2 || n > 3) return std::nullopt;
  if (comps[i + 1].code != kMaTcp) return std::nullopt;
  if (n == 3 && comps[i + 2].code != kMaP2p) return std::nullopt;

  TcpTarget t;
  const Component &host = comps[i];
  char buf[INET6_ADDRSTRLEN];
  switch (host.code) {
    case kMaIp4:
      inet_ntop(AF_INET, host.value.data(), buf, sizeof buf);
      t.host = buf;
      t.kind = TcpTarget::ip4;
      break;
    case kMaIp6:
      inet_ntop(AF_INET6, host.value.data(), buf, sizeof buf);
      t.host = buf;
      if (!zone.empty()) t.host += "%" + zone;
      t.kind = TcpTarget::ip6;
      break;
    case kMaDns:
      t.host = std::string(as_string_view(host.value));
      t.kind = TcpTarget::dns;
      break;
    case kMaDns4:
      t.host = std::string(as_string_view(host.value));
      t.kind = TcpTarget::dns4;
      break;
    case kMaDns6:
      t.host = std::string(as_string_view(host.value));
      t.kind = TcpTarget::dns6;
      break;
    default:
      return std::nullopt;
  }
  const BytesView port = comps[i + 1].value;
  t.port = static_cast<uint16_t>(port[0] << 8 | port[1]);
  return t;
}

Multiaddr Multiaddr::from_tcp(const std::string &ip_literal, uint16_t port) {
  std::string ip = ip_literal;
  if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']') ip = ip.substr(1, ip.size() - 2);
  std::string zone;
  if (auto pct = ip.find('%'); pct != std::string::npos) {
    zone = ip.substr(pct + 1);
    ip.resize(pct);
  }
  Bytes b;
  uint8_t addr[16];
  if (zone.empty() && inet_pton(AF_INET, ip.c_str(), addr) == 1) {
    append_uvarint(b, kMaIp4);
    b.insert(b.end(), addr, addr + 4);
  } else if (inet_pton(AF_INET6, ip.c_str(), addr) == 1) {
    static const uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (zone.empty() && std::memcmp(addr, kMappedPrefix, 12) == 0) {
      append_uvarint(b, kMaIp4);
      b.insert(b.end(), addr + 12, addr + 16);
    } else {
      if (!zone.empty()) {
        if (zone.size() > 255 || zone.find('/') != std::string::npos) return Multiaddr();
        append_uvarint(b, kMaIp6Zone);
        append_lp(b, as_bytes(zone));
      }
      append_uvarint(b, kMaIp6);
      b.insert(b.end(), addr, addr + 16);
    }
  } else {
    return Multiaddr();
  }
  append_uvarint(b, kMaTcp);
  b.push_back(static_cast<uint8_t>(port >> 8));
  b.push_back(static_cast<uint8_t>(port));
  return Multiaddr(std::move(b));
}

}  // namespace chorus::p2p
