#include "transport.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include <boost/asio/ip/address.hpp>

namespace chorus::mdns {

namespace asio = boost::asio;
using udp = asio::ip::udp;

namespace {

const char *kGroup4 = "224.0.0.251";
const char *kGroup6 = "ff02::fb";

bool setopt(int fd, int level, int name, const void *v, socklen_t len, std::string &why, const char *what) {
  if (::setsockopt(fd, level, name, v, len) == 0) return true;
  why = std::string(what) + ": " + std::strerror(errno);
  return false;
}

struct Candidate {
  std::string name;
  unsigned index = 0;
  bool multicast = false, loopback = false, has4 = false, has6 = false;
  in_addr addr4{};
};

}  // namespace

Transport::Transport(asio::io_context &io, uint16_t port, bool ipv4, bool ipv6, std::vector<std::string> only,
                     Receive on_receive)
    : io_(io), port_(port), want4_(ipv4), want6_(ipv6), only_(std::move(only)), on_receive_(std::move(on_receive)) {
  buf4_.resize(9000);
  buf6_.resize(9000);
}

Transport::~Transport() { close(); }

bool Transport::open(std::string &why, std::vector<std::string> &warnings) {
  const int one = 1;
  const int ttl = 255;
  if (want4_) {
    std::string err;
    auto s = std::make_unique<udp::socket>(io_);
    boost::system::error_code ec;
    s->open(udp::v4(), ec);
    bool ok = !ec;
    if (!ok) err = "socket: " + ec.message();
    const int fd = ok ? s->native_handle() : -1;
    ok = ok && setopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one, err, "SO_REUSEADDR") &&
         setopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one, err, "SO_REUSEPORT") &&
         setopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl, err, "IP_MULTICAST_TTL") &&
         setopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &one, sizeof one, err, "IP_MULTICAST_LOOP");
    if (ok) {
      s->bind(udp::endpoint(asio::ip::address_v4::any(), port_), ec);
      if (ec) {
        ok = false;
        err = "bind 0.0.0.0:" + std::to_string(port_) + ": " + ec.message();
      }
    }
    if (ok) {
      s4_ = std::move(s);
      receive(*s4_, buf4_, from4_);
    } else {
      warnings.push_back("IPv4 mDNS unavailable: " + err);
    }
  }
  if (want6_) {
    std::string err;
    auto s = std::make_unique<udp::socket>(io_);
    boost::system::error_code ec;
    s->open(udp::v6(), ec);
    bool ok = !ec;
    if (!ok) err = "socket: " + ec.message();
    const int fd = ok ? s->native_handle() : -1;
    ok = ok && setopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one, err, "IPV6_V6ONLY") &&
         setopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one, err, "SO_REUSEADDR") &&
         setopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one, err, "SO_REUSEPORT") &&
         setopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &ttl, sizeof ttl, err, "IPV6_MULTICAST_HOPS") &&
         setopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &one, sizeof one, err, "IPV6_MULTICAST_LOOP");
    if (ok) {
      s->bind(udp::endpoint(asio::ip::address_v6::any(), port_), ec);
      if (ec) {
        ok = false;
        err = "bind [::]:" + std::to_string(port_) + ": " + ec.message();
      }
    }
    if (ok) {
      s6_ = std::move(s);
      receive(*s6_, buf6_, from6_);
    } else {
      warnings.push_back("IPv6 mDNS unavailable: " + err);
    }
  }
  if (!s4_ && !s6_) {
    why = warnings.empty() ? "no address family enabled" : warnings.back();
    return false;
  }
  return true;
}

void Transport::receive(udp::socket &s, std::vector<uint8_t> &buf, udp::endpoint &from) {
  s.async_receive_from(asio::buffer(buf), from, [this, &s, &buf, &from](const boost::system::error_code &ec, size_t n) {
    if (ec == asio::error::operation_aborted || !s.is_open()) return;
    if (!ec) on_receive_(buf.data(), n, from);
    receive(s, buf, from);
  });
}

std::vector<std::string> Transport::rescan(std::vector<std::string> &changes) {
  std::map<unsigned, Candidate> found;
  struct ifaddrs *list = nullptr;
  if (getifaddrs(&list) == 0) {
    for (auto *i = list; i != nullptr; i = i->ifa_next) {
      if (i->ifa_addr == nullptr || i->ifa_name == nullptr || (i->ifa_flags & IFF_UP) == 0) continue;
      if (!only_.empty() && std::find(only_.begin(), only_.end(), i->ifa_name) == only_.end()) continue;
      const unsigned idx = if_nametoindex(i->ifa_name);
      if (idx == 0) continue;
      Candidate &c = found[idx];
      c.name = i->ifa_name;
      c.index = idx;
      c.multicast = (i->ifa_flags & IFF_MULTICAST) != 0;
      c.loopback = (i->ifa_flags & IFF_LOOPBACK) != 0;
      if (i->ifa_addr->sa_family == AF_INET && !c.has4) {
        c.has4 = true;
        c.addr4 = reinterpret_cast<sockaddr_in *>(i->ifa_addr)->sin_addr;
      } else if (i->ifa_addr->sa_family == AF_INET6) {
        c.has6 = true;
      }
    }
    freeifaddrs(list);
  }
  // Multicast-capable interfaces; loopback only when it is all there is (a namespace with only lo,
  // where multicast still works between processes).
  const bool any_real = std::any_of(found.begin(), found.end(), [](const auto &kv) {
    return kv.second.multicast && !kv.second.loopback && (kv.second.has4 || kv.second.has6);
  });
  std::vector<std::string> joined;
  std::set<unsigned> keep;
  for (auto &[idx, c] : found) {
    const bool usable = c.loopback ? !any_real : c.multicast;
    if (!usable) continue;
    InterfaceState &st = ifs_[idx];
    const bool fresh = !st.v4 && !st.v6;
    st.name = c.name;
    st.index = idx;
    char text[INET_ADDRSTRLEN] = {};
    if (c.has4) inet_ntop(AF_INET, &c.addr4, text, sizeof text);
    // IPv4: (re)join when the interface got an address or its address changed.
    if (s4_ && c.has4 && (!st.v4 || st.v4_addr != text)) {
      ip_mreqn m{};
      inet_pton(AF_INET, kGroup4, &m.imr_multiaddr);
      m.imr_ifindex = static_cast<int>(idx);
      if (st.v4) ::setsockopt(s4_->native_handle(), IPPROTO_IP, IP_DROP_MEMBERSHIP, &m, sizeof m);
      m.imr_address = c.addr4;
      std::string err;
      if (setopt(s4_->native_handle(), IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m, err, "IP_ADD_MEMBERSHIP") ||
          errno == EADDRINUSE) {
        st.v4 = true;
        st.v4_addr = text;
        changes.push_back("joined " + std::string(kGroup4) + " on " + c.name + " (" + text + ")");
      } else {
        changes.push_back("cannot join " + std::string(kGroup4) + " on " + c.name + ": " + err);
      }
    } else if (s4_ && !c.has4 && st.v4) {
      st.v4 = false;
      st.v4_addr.clear();
      changes.push_back(c.name + " lost its IPv4 address");
    }
    if (s6_ && c.has6 && !st.v6) {
      ipv6_mreq m{};
      inet_pton(AF_INET6, kGroup6, &m.ipv6mr_multiaddr);
      m.ipv6mr_interface = idx;
      std::string err;
      if (setopt(s6_->native_handle(), IPPROTO_IPV6, IPV6_JOIN_GROUP, &m, sizeof m, err, "IPV6_JOIN_GROUP") ||
          errno == EADDRINUSE) {
        st.v6 = true;
        changes.push_back("joined " + std::string(kGroup6) + " on " + c.name);
      } else {
        changes.push_back("cannot join " + std::string(kGroup6) + " on " + c.name + ": " + err);
      }
    }
    if (st.v4 || st.v6) {
      keep.insert(idx);
      if (fresh) joined.push_back(c.name);
    }
  }
  for (auto it = ifs_.begin(); it != ifs_.end();) {
    if (keep.count(it->first) != 0) {
      ++it;
      continue;
    }
    // Gone (or no longer usable): leave the groups; errors are expected when the device vanished.
    if (it->second.v4 && s4_) {
      ip_mreqn m{};
      inet_pton(AF_INET, kGroup4, &m.imr_multiaddr);
      m.imr_ifindex = static_cast<int>(it->first);
      ::setsockopt(s4_->native_handle(), IPPROTO_IP, IP_DROP_MEMBERSHIP, &m, sizeof m);
    }
    if (it->second.v6 && s6_) {
      ipv6_mreq m{};
      inet_pton(AF_INET6, kGroup6, &m.ipv6mr_multiaddr);
      m.ipv6mr_interface = it->first;
      ::setsockopt(s6_->native_handle(), IPPROTO_IPV6, IPV6_LEAVE_GROUP, &m, sizeof m);
    }
    if (it->second.v4 || it->second.v6) changes.push_back("left " + it->second.name);
    it = ifs_.erase(it);
  }
  return joined;
}

size_t Transport::send_multicast(const std::vector<uint8_t> &packet) {
  size_t sent = 0;
  for (const auto &[idx, st] : ifs_) {
    boost::system::error_code ec;
    if (st.v4 && s4_) {
      ip_mreqn m{};
      m.imr_ifindex = static_cast<int>(idx);
      ::setsockopt(s4_->native_handle(), IPPROTO_IP, IP_MULTICAST_IF, &m, sizeof m);
      s4_->send_to(asio::buffer(packet), udp::endpoint(asio::ip::make_address_v4(kGroup4), port_), 0, ec);
      ec ? ++send_errors_ : ++sent;
    }
    if (st.v6 && s6_) {
      const unsigned i = idx;
      ::setsockopt(s6_->native_handle(), IPPROTO_IPV6, IPV6_MULTICAST_IF, &i, sizeof i);
      auto group = asio::ip::make_address_v6(kGroup6);
      group.scope_id(idx);
      s6_->send_to(asio::buffer(packet), udp::endpoint(group, port_), 0, ec);
      ec ? ++send_errors_ : ++sent;
    }
  }
  return sent;
}

bool Transport::send_to(const std::vector<uint8_t> &packet, const udp::endpoint &to) {
  boost::system::error_code ec;
  auto &s = to.address().is_v4() ? s4_ : s6_;
  if (!s) return false;
  s->send_to(asio::buffer(packet), to, 0, ec);
  if (ec) ++send_errors_;
  return !ec;
}

void Transport::close() {
  boost::system::error_code ec;
  if (s4_) s4_->close(ec);
  if (s6_) s6_->close(ec);
}

}  // namespace chorus::mdns
