// The host applies plugin config schemas with the SDK's implementation (chorus/config_schema.hpp), the
// same code the fake host uses in plugin unit tests, so a config means the same thing in both.
#pragma once
#include <chorus/config_schema.hpp>

namespace chorus::host {

using chorus::config_schema::check_schema;
using chorus::config_schema::redact_secrets;
using chorus::config_schema::validate_and_default;

}  // namespace chorus::host
