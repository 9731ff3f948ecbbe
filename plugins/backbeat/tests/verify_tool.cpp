// backbeat_verify PUBLIC_KEY_B64 SIGNATURE_B64 < payload : exit 0 iff the Ed25519 signature over the
// payload bytes verifies (used by the integration tests; Python's stdlib has no Ed25519).
#include <iostream>
#include <iterator>
#include <string>

#include "transport.hpp"

int main(int argc, char **argv) {
  if (argc != 3) {
    std::cerr << "usage: backbeat_verify PUBLIC_KEY_B64 SIGNATURE_B64 < payload\n";
    return 2;
  }
  std::string payload((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  return chorus::backbeat::verify_signature(payload, argv[2], argv[1]) ? 0 : 1;
}
