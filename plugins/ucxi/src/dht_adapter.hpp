// The real Dht (content.hpp) over the chorus.dht service, major 1 (chorus/services/dht_v1.h).
// Results are copied out of each completion (its pointers live for that call only); an operation the
// service refuses at once completes inline with the service's status and message, so `done` runs
// exactly once either way.
#pragma once

#include <chorus/plugin.hpp>
#include <chorus/services/dht_v1.h>

#include "content.hpp"

namespace chorus::ucxi {

class DhtAdapter final : public Dht {
 public:
  // max_providers: the cap passed to find_providers (0: the service's own).
  explicit DhtAdapter(chorus::ServiceRef<chorus_dht_v1> dht, uint32_t max_providers = 20);

  void put_value(const std::string &key, std::vector<uint8_t> value, uint32_t timeout_ms, Result done) override;
  void get_value(const std::string &key, uint32_t timeout_ms, Result done) override;
  void provide(const std::vector<uint8_t> &key, uint32_t timeout_ms, Result done) override;
  void find_providers(const std::vector<uint8_t> &key, uint32_t timeout_ms, Result done) override;
  void store(const std::string &key, const std::string &role, std::vector<uint8_t> content, uint32_t timeout_ms,
             Result done) override;
  void retrieve(const std::string &key, uint32_t timeout_ms, Result done) override;

 private:
  chorus::ServiceRef<chorus_dht_v1> dht_;
  uint32_t max_providers_;
};

}  // namespace chorus::ucxi
