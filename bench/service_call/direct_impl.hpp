// The C++ side of bench_service_call: the same work as bench.adder's add(), reached by a direct
// member call and by a virtual call. Defined in direct_impl.cpp, a separate translation unit, and
// marked noinline, so the compiler cannot fold the calls away (there is no LTO in this build).
#pragma once
#include <cstdint>
#include <memory>

namespace chorus::bench {

class DirectAdder {
 public:
  [[gnu::noinline]] int64_t add(int64_t x);

 private:
  int64_t acc_ = 0;
};

class VirtualAdder {
 public:
  virtual ~VirtualAdder();
  virtual int64_t add(int64_t x) = 0;
};

// Returns a concrete VirtualAdder the caller's TU never sees, so the call cannot be devirtualised.
std::unique_ptr<VirtualAdder> make_virtual_adder();

}  // namespace chorus::bench
