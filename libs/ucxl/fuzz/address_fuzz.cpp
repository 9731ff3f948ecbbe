#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ucxl/address.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  (void)chorus::ucxl::parse(std::string_view(reinterpret_cast<const char *>(data), size));
  return 0;
}
