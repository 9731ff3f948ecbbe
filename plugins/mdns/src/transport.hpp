// UDP multicast sockets for mDNS on every usable interface (Boost.Asio, Linux socket options).
//
// One IPv4 socket bound to 0.0.0.0:<port> and one IPv6 socket bound to [::]:<port>, both with
// SO_REUSEADDR + SO_REUSEPORT so avahi, js-libp2p and other agents on the host share the port. The
// groups 224.0.0.251 / ff02::fb are joined per interface; sending goes out on each joined interface
// in turn (IP_MULTICAST_IF). rescan() follows interfaces that appear, vanish or change addresses.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>

namespace chorus::mdns {

struct InterfaceState {
  std::string name;
  unsigned index = 0;
  bool v4 = false;  // joined 224.0.0.251 here
  bool v6 = false;  // joined ff02::fb here
  std::string v4_addr;
};

class Transport {
 public:
  using Receive = std::function<void(const uint8_t *data, size_t len, const boost::asio::ip::udp::endpoint &from)>;

  Transport(boost::asio::io_context &io, uint16_t port, bool ipv4, bool ipv6, std::vector<std::string> only,
            Receive on_receive);
  ~Transport();

  // Opens the sockets; false + why when neither family could be opened.
  bool open(std::string &why, std::vector<std::string> &warnings);
  // Re-reads the interfaces; joins new ones, leaves gone ones. Returns names of newly joined
  // interfaces (announce there) and fills `changes` with human-readable lines for the log.
  std::vector<std::string> rescan(std::vector<std::string> &changes);
  // Multicasts on every joined interface; returns how many datagrams went out.
  size_t send_multicast(const std::vector<uint8_t> &packet);
  bool send_to(const std::vector<uint8_t> &packet, const boost::asio::ip::udp::endpoint &to);
  void close();

  const std::map<unsigned, InterfaceState> &interfaces() const { return ifs_; }
  uint64_t send_errors() const { return send_errors_; }

 private:
  void receive(boost::asio::ip::udp::socket &s, std::vector<uint8_t> &buf, boost::asio::ip::udp::endpoint &from);

  boost::asio::io_context &io_;
  uint16_t port_;
  bool want4_, want6_;
  std::vector<std::string> only_;
  Receive on_receive_;
  std::unique_ptr<boost::asio::ip::udp::socket> s4_, s6_;
  std::vector<uint8_t> buf4_, buf6_;
  boost::asio::ip::udp::endpoint from4_, from6_;
  std::map<unsigned, InterfaceState> ifs_;
  uint64_t send_errors_ = 0;
};

}  // namespace chorus::mdns
