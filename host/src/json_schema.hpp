// A small JSON Schema subset for plugin config sections: type, properties, required,
// additionalProperties (false or a schema), items, enum, minimum, maximum, minLength, maxLength,
// default, and "x-secret". Enough to reject unknown keys and wrong types with the key path.
#pragma once
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace chorus::host {

// Returns nullopt when the schema itself is acceptable, else a one-line reason.
std::optional<std::string> check_schema(const nlohmann::json &schema);

// Validates `value` and fills in defaults (of properties that are absent) in place. On failure returns
// a one-line error whose first word is the path below `path_prefix`, e.g.
// "plugins.p2p.config.listen[1]: expected a string, got number".
std::optional<std::string> validate_and_default(const nlohmann::json &schema, nlohmann::json &value,
                                                const std::string &path_prefix);

// A copy of `value` with every value whose schema has "x-secret": true replaced by "***".
nlohmann::json redact_secrets(const nlohmann::json &schema, const nlohmann::json &value);

}  // namespace chorus::host
