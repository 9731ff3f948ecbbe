#pragma once

namespace chorus::dht {}  // TODO(slice): declared by the slice that owns this file
