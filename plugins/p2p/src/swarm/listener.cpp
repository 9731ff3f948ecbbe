#include "swarm/listener.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>

#include <algorithm>

#include <boost/asio/ip/v6_only.hpp>

#include "node_impl.hpp"

namespace chorus::p2p {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

Listener::Listener(NodeImpl &node) : node_(node) {}
Listener::~Listener() = default;

std::string Listener::bind(const std::vector<std::string> &listen) {
  std::vector<std::string> errors;
  for (const auto &text : listen) {
    auto ma = Multiaddr::parse(text, nullptr);
    auto t = ma ? ma->tcp_target() : std::nullopt;
    if (!t || (t->kind != Multiaddr::TcpTarget::ip4 && t->kind != Multiaddr::TcpTarget::ip6)) {
      errors.push_back(text + ": only /ip4 and /ip6 TCP addresses can be listened on");
      continue;
    }
    boost::system::error_code ec;
    const auto ip = asio::ip::make_address(t->host, ec);
    if (ec) {
      errors.push_back(text + ": " + ec.message());
      continue;
    }
    auto acc = std::make_unique<tcp::acceptor>(node_.io());
    const tcp::endpoint ep(ip, t->port);
    acc->open(ep.protocol(), ec);
    if (!ec && ip.is_v6()) acc->set_option(asio::ip::v6_only(true), ec);
    if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acc->bind(ep, ec);
    if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      errors.push_back(text + ": " + ec.message());
      continue;
    }
    const auto local = acc->local_endpoint(ec);
    bound_.push_back(Multiaddr::from_tcp(local.address().to_string(), local.port()));
    acceptors_.push_back(std::move(acc));
  }
  if (acceptors_.empty()) {
    std::string msg = "could not listen on any address";
    for (const auto &e : errors) msg += "; " + e;
    return msg;
  }
  for (const auto &e : errors) node_.logf(CHORUS_LOG_WARN, "not listening on " + e);
  return {};
}

void Listener::start(AcceptFn on_accept) {
  on_accept_ = std::move(on_accept);
  for (auto &acc : acceptors_) accept_loop(*acc);
}

void Listener::close() {
  for (auto &acc : acceptors_) {
    boost::system::error_code ec;
    acc->close(ec);
  }
}

void Listener::clear() { acceptors_.clear(); }

void Listener::accept_loop(tcp::acceptor &acceptor) {
  acceptor.async_accept([this, &acceptor](const boost::system::error_code &ec, tcp::socket sock) {
    if (node_.stopping() || !acceptor.is_open()) return;
    if (!ec) {
      on_accept_(std::move(sock));
    } else if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space) {
      node_.logf(CHORUS_LOG_WARN, "accept failed: " + ec.message());
    }
    accept_loop(acceptor);
  });
}

std::vector<std::string> Listener::advertised_addrs(bool announce_loopback) const {
  std::vector<std::string> out;
  struct ifaddrs *ifs = nullptr;
  const bool have_ifs = getifaddrs(&ifs) == 0;
  for (const auto &ma : bound_) {
    auto t = ma.tcp_target();
    if (!t) continue;
    const bool any4 = t->kind == Multiaddr::TcpTarget::ip4 && t->host == "0.0.0.0";
    const bool any6 = t->kind == Multiaddr::TcpTarget::ip6 && t->host == "::";
    if (!any4 && !any6) {
      out.push_back(ma.to_string());
      continue;
    }
    if (!have_ifs) continue;
    for (auto *i = ifs; i != nullptr; i = i->ifa_next) {
      if (i->ifa_addr == nullptr || (i->ifa_flags & IFF_UP) == 0) continue;
      const bool loop = (i->ifa_flags & IFF_LOOPBACK) != 0;
      if (loop && !announce_loopback) continue;
      char buf[INET6_ADDRSTRLEN] = {};
      if (any4 && i->ifa_addr->sa_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in *>(i->ifa_addr)->sin_addr, buf, sizeof buf);
      } else if (any6 && i->ifa_addr->sa_family == AF_INET6) {
        const auto *a6 = reinterpret_cast<sockaddr_in6 *>(i->ifa_addr);
        if (IN6_IS_ADDR_LINKLOCAL(&a6->sin6_addr)) continue;  // would need a zone
        inet_ntop(AF_INET6, &a6->sin6_addr, buf, sizeof buf);
      } else {
        continue;
      }
      const auto text = Multiaddr::from_tcp(buf, t->port).to_string();
      if (std::find(out.begin(), out.end(), text) == out.end()) out.push_back(text);
    }
  }
  if (ifs != nullptr) freeifaddrs(ifs);
  return out;
}

}  // namespace chorus::p2p
