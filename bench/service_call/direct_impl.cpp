#include "direct_impl.hpp"

namespace chorus::bench {

int64_t DirectAdder::add(int64_t x) {
  acc_ += x;
  return acc_;
}

VirtualAdder::~VirtualAdder() = default;

namespace {
class VirtualAdderImpl final : public VirtualAdder {
 public:
  [[gnu::noinline]] int64_t add(int64_t x) override {
    acc_ += x;
    return acc_;
  }

 private:
  int64_t acc_ = 0;
};
}  // namespace

std::unique_ptr<VirtualAdder> make_virtual_adder() { return std::make_unique<VirtualAdderImpl>(); }

}  // namespace chorus::bench
