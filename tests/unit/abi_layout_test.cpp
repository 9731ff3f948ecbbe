// Pins the C ABI of chorus/plugin.h and of the service headers in chorus/services/: the offset and
// size of every field of every struct, the slot signatures of the function tables, and every
// constant. If one of these fails, a change to a header broke binary compatibility with
// already-built plugins or hosts: structs are append-only (see plugin.h's compatibility rules), and
// appended fields get new lines here.
#include <chorus/plugin.h>
#include <chorus/services/ai_provider_v1.h>
#include <chorus/services/backbeat_v1.h>
#include <chorus/services/dht_v1.h>
#include <chorus/services/discovery_v1.h>
#include <chorus/services/election_v1.h>
#include <chorus/services/eventlog_v1.h>
#include <chorus/services/license_v1.h>
#include <chorus/services/p2p_host_v1.h>
#include <chorus/services/pubsub_v1.h>
#include <chorus/services/reasoning_v1.h>
#include <chorus/services/ucxi_v1.h>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <string_view>
#include <type_traits>

namespace {

#if defined(__LP64__) && (defined(__x86_64__) || defined(__aarch64__))
#define CHORUS_ABI_PINNED 1

// Offset and size of one field.
#define PIN(T, field, off, size)                                                      \
  static_assert(offsetof(T, field) == (off), #T "." #field " moved");                 \
  static_assert(sizeof(T::field) == (size), #T "." #field " resized")
#define PIN_STRUCT(T, size, align)                                 \
  static_assert(sizeof(T) == (size), "sizeof(" #T ") changed");    \
  static_assert(alignof(T) == (align), "alignof(" #T ") changed"); \
  static_assert(std::is_standard_layout_v<T> && std::is_trivially_copyable_v<T>, #T " is not plain C data")
// The exact type (for slots: the full signature) of one field.
#define PIN_TYPE(T, field, ...) \
  static_assert(std::is_same_v<decltype(T::field), __VA_ARGS__>, #T "." #field " changed type")

// ---- scalar typedefs ----
static_assert(std::is_same_v<chorus_status, int32_t>);
static_assert(std::is_same_v<chorus_task_fn, void (*)(void *)>);
static_assert(std::is_same_v<chorus_dtor_fn, void (*)(void *)>);
static_assert(std::is_same_v<chorus_watch_fn, void (*)(void *, const char *, int32_t)>);
static_assert(std::is_same_v<chorus_http_handler_fn,
                             void (*)(void *, const chorus_http_request *, chorus_http_exchange *)>);
static_assert(std::is_same_v<chorus_plugin_entry_fn, const chorus_plugin_descriptor *(*)(const chorus_abi_info *)>);

// ---- chorus_error ----
PIN_STRUCT(chorus_error, 520, 4);
PIN(chorus_error, struct_size, 0, 4);
PIN(chorus_error, code, 4, 4);
PIN(chorus_error, message, 8, 512);
PIN_TYPE(chorus_error, struct_size, uint32_t);
PIN_TYPE(chorus_error, code, chorus_status);
PIN_TYPE(chorus_error, message, char[512]);

// ---- chorus_buf ----
PIN_STRUCT(chorus_buf, 32, 8);
PIN(chorus_buf, data, 0, 8);
PIN(chorus_buf, len, 8, 8);
PIN(chorus_buf, owner, 16, 8);
PIN(chorus_buf, release, 24, 8);
PIN_TYPE(chorus_buf, data, const char *);
PIN_TYPE(chorus_buf, len, size_t);
PIN_TYPE(chorus_buf, owner, void *);
PIN_TYPE(chorus_buf, release, void (*)(chorus_buf *));

// ---- chorus_provide ----
PIN_STRUCT(chorus_provide, 24, 8);
PIN(chorus_provide, struct_size, 0, 4);
PIN(chorus_provide, flags, 4, 4);
PIN(chorus_provide, service, 8, 8);
PIN(chorus_provide, major, 16, 2);
PIN(chorus_provide, minor, 18, 2);
PIN(chorus_provide, reserved, 20, 4);
PIN_TYPE(chorus_provide, struct_size, uint32_t);
PIN_TYPE(chorus_provide, flags, uint32_t);
PIN_TYPE(chorus_provide, service, const char *);
PIN_TYPE(chorus_provide, major, uint16_t);
PIN_TYPE(chorus_provide, minor, uint16_t);
PIN_TYPE(chorus_provide, reserved, uint32_t);

// ---- chorus_require ----
PIN_STRUCT(chorus_require, 24, 8);
PIN(chorus_require, struct_size, 0, 4);
PIN(chorus_require, flags, 4, 4);
PIN(chorus_require, service, 8, 8);
PIN(chorus_require, range, 16, 8);
PIN_TYPE(chorus_require, struct_size, uint32_t);
PIN_TYPE(chorus_require, flags, uint32_t);
PIN_TYPE(chorus_require, service, const char *);
PIN_TYPE(chorus_require, range, const char *);

// ---- chorus_service_ref ----
PIN_STRUCT(chorus_service_ref, 40, 8);
PIN(chorus_service_ref, struct_size, 0, 4);
PIN(chorus_service_ref, major, 4, 2);
PIN(chorus_service_ref, minor, 6, 2);
PIN(chorus_service_ref, table, 8, 8);
PIN(chorus_service_ref, self, 16, 8);
PIN(chorus_service_ref, handle, 24, 8);
PIN(chorus_service_ref, provider_id, 32, 8);
PIN_TYPE(chorus_service_ref, struct_size, uint32_t);
PIN_TYPE(chorus_service_ref, major, uint16_t);
PIN_TYPE(chorus_service_ref, minor, uint16_t);
PIN_TYPE(chorus_service_ref, table, const void *);
PIN_TYPE(chorus_service_ref, self, void *);
PIN_TYPE(chorus_service_ref, handle, uint64_t);
PIN_TYPE(chorus_service_ref, provider_id, const char *);

// ---- chorus_http_header ----
PIN_STRUCT(chorus_http_header, 32, 8);
PIN(chorus_http_header, name, 0, 8);
PIN(chorus_http_header, name_len, 8, 8);
PIN(chorus_http_header, value, 16, 8);
PIN(chorus_http_header, value_len, 24, 8);
PIN_TYPE(chorus_http_header, name, const char *);
PIN_TYPE(chorus_http_header, name_len, size_t);
PIN_TYPE(chorus_http_header, value, const char *);
PIN_TYPE(chorus_http_header, value_len, size_t);

// ---- chorus_http_request ----
PIN_STRUCT(chorus_http_request, 96, 8);
PIN(chorus_http_request, struct_size, 0, 4);
PIN(chorus_http_request, header_count, 4, 4);
PIN(chorus_http_request, method, 8, 8);
PIN(chorus_http_request, method_len, 16, 8);
PIN(chorus_http_request, path, 24, 8);
PIN(chorus_http_request, path_len, 32, 8);
PIN(chorus_http_request, query, 40, 8);
PIN(chorus_http_request, query_len, 48, 8);
PIN(chorus_http_request, body, 56, 8);
PIN(chorus_http_request, body_len, 64, 8);
PIN(chorus_http_request, headers, 72, 8);
PIN(chorus_http_request, remote, 80, 8);
PIN(chorus_http_request, remote_len, 88, 8);
PIN_TYPE(chorus_http_request, struct_size, uint32_t);
PIN_TYPE(chorus_http_request, header_count, uint32_t);
PIN_TYPE(chorus_http_request, method, const char *);
PIN_TYPE(chorus_http_request, method_len, size_t);
PIN_TYPE(chorus_http_request, path, const char *);
PIN_TYPE(chorus_http_request, path_len, size_t);
PIN_TYPE(chorus_http_request, query, const char *);
PIN_TYPE(chorus_http_request, query_len, size_t);
PIN_TYPE(chorus_http_request, body, const char *);
PIN_TYPE(chorus_http_request, body_len, size_t);
PIN_TYPE(chorus_http_request, headers, const chorus_http_header *);
PIN_TYPE(chorus_http_request, remote, const char *);
PIN_TYPE(chorus_http_request, remote_len, size_t);

// ---- chorus_host_api ----
PIN_STRUCT(chorus_host_api, 240, 8);
PIN(chorus_host_api, struct_size, 0, 4);
PIN(chorus_host_api, abi_major, 4, 2);
PIN(chorus_host_api, abi_minor, 6, 2);
PIN(chorus_host_api, log, 8, 8);
PIN(chorus_host_api, log_level, 16, 8);
PIN(chorus_host_api, host_info, 24, 8);
PIN(chorus_host_api, post, 32, 8);
PIN(chorus_host_api, timer_start, 40, 8);
PIN(chorus_host_api, timer_cancel, 48, 8);
PIN(chorus_host_api, now_ms, 56, 8);
PIN(chorus_host_api, service_acquire, 64, 8);
PIN(chorus_host_api, service_release, 72, 8);
PIN(chorus_host_api, service_watch, 80, 8);
PIN(chorus_host_api, service_unwatch, 88, 8);
PIN(chorus_host_api, metric_define, 96, 8);
PIN(chorus_host_api, metric_update, 104, 8);
PIN(chorus_host_api, health_report, 112, 8);
PIN(chorus_host_api, http_route_add, 120, 8);
PIN(chorus_host_api, http_respond, 128, 8);
PIN(chorus_host_api, http_stream_begin, 136, 8);
PIN(chorus_host_api, http_stream_write, 144, 8);
PIN(chorus_host_api, http_stream_end, 152, 8);
PIN(chorus_host_api, status_str, 160, 8);
PIN(chorus_host_api, reserved, 168, 64);
PIN(chorus_host_api, redact, 232, 8);  // ABI 1.2
PIN_TYPE(chorus_host_api, struct_size, uint32_t);
PIN_TYPE(chorus_host_api, abi_major, uint16_t);
PIN_TYPE(chorus_host_api, abi_minor, uint16_t);
PIN_TYPE(chorus_host_api, log, void (*)(chorus_host_ctx *, int32_t, const char *, size_t));
PIN_TYPE(chorus_host_api, log_level, int32_t (*)(chorus_host_ctx *));
PIN_TYPE(chorus_host_api, host_info, chorus_status (*)(chorus_host_ctx *, chorus_buf *));
PIN_TYPE(chorus_host_api, post, chorus_status (*)(chorus_host_ctx *, chorus_task_fn, void *, chorus_dtor_fn));
PIN_TYPE(chorus_host_api, timer_start,
         chorus_status (*)(chorus_host_ctx *, uint64_t, uint64_t, chorus_task_fn, void *, chorus_dtor_fn, uint64_t *));
PIN_TYPE(chorus_host_api, timer_cancel, chorus_status (*)(chorus_host_ctx *, uint64_t));
PIN_TYPE(chorus_host_api, now_ms, uint64_t (*)(chorus_host_ctx *));
PIN_TYPE(chorus_host_api, service_acquire,
         chorus_status (*)(chorus_host_ctx *, const char *, const char *, chorus_service_ref *, chorus_error *));
PIN_TYPE(chorus_host_api, service_release, void (*)(chorus_host_ctx *, chorus_service_ref *));
PIN_TYPE(chorus_host_api, service_watch,
         chorus_status (*)(chorus_host_ctx *, const char *, chorus_watch_fn, void *, uint64_t *));
PIN_TYPE(chorus_host_api, service_unwatch, void (*)(chorus_host_ctx *, uint64_t));
PIN_TYPE(chorus_host_api, metric_define,
         chorus_status (*)(chorus_host_ctx *, int32_t, const char *, const char *, const char *, const double *, size_t,
                           uint64_t *, chorus_error *));
PIN_TYPE(chorus_host_api, metric_update,
         chorus_status (*)(chorus_host_ctx *, uint64_t, int32_t, const char *const *, size_t, double));
PIN_TYPE(chorus_host_api, health_report, void (*)(chorus_host_ctx *, int32_t, const char *, size_t));
PIN_TYPE(chorus_host_api, http_route_add,
         chorus_status (*)(chorus_host_ctx *, const char *, const char *, uint32_t, chorus_http_handler_fn, void *,
                           chorus_error *));
PIN_TYPE(chorus_host_api, http_respond,
         chorus_status (*)(chorus_http_exchange *, int32_t, const char *, const chorus_http_header *, size_t,
                           const char *, size_t));
PIN_TYPE(chorus_host_api, http_stream_begin,
         chorus_status (*)(chorus_http_exchange *, int32_t, const char *, const chorus_http_header *, size_t));
PIN_TYPE(chorus_host_api, http_stream_write, chorus_status (*)(chorus_http_exchange *, const char *, size_t));
PIN_TYPE(chorus_host_api, http_stream_end, chorus_status (*)(chorus_http_exchange *));
PIN_TYPE(chorus_host_api, status_str, const char *(*)(chorus_status));
PIN_TYPE(chorus_host_api, reserved, const void *[8]);
PIN_TYPE(chorus_host_api, redact,
         chorus_status (*)(chorus_host_ctx *, int32_t, int32_t, const char *, size_t, chorus_buf *, uint32_t *));

// ---- chorus_plugin_vtable ----
PIN_STRUCT(chorus_plugin_vtable, 72, 8);
PIN(chorus_plugin_vtable, struct_size, 0, 4);
PIN(chorus_plugin_vtable, reserved, 4, 4);
PIN(chorus_plugin_vtable, create, 8, 8);
PIN(chorus_plugin_vtable, start, 16, 8);
PIN(chorus_plugin_vtable, get_service, 24, 8);
PIN(chorus_plugin_vtable, stop, 32, 8);
PIN(chorus_plugin_vtable, destroy, 40, 8);
PIN(chorus_plugin_vtable, reconfigure, 48, 8);
PIN(chorus_plugin_vtable, drain, 56, 8);
PIN(chorus_plugin_vtable, reload, 64, 8);  // ABI 1.1
PIN_TYPE(chorus_plugin_vtable, struct_size, uint32_t);
PIN_TYPE(chorus_plugin_vtable, reserved, uint32_t);
PIN_TYPE(chorus_plugin_vtable, create,
         chorus_status (*)(const chorus_host_api *, chorus_host_ctx *, const char *, size_t, void **, chorus_error *));
PIN_TYPE(chorus_plugin_vtable, start, chorus_status (*)(void *, chorus_error *));
PIN_TYPE(chorus_plugin_vtable, get_service,
         chorus_status (*)(void *, const char *, uint16_t, const void **, void **, chorus_error *));
PIN_TYPE(chorus_plugin_vtable, stop, chorus_status (*)(void *, uint64_t, chorus_error *));
PIN_TYPE(chorus_plugin_vtable, destroy, void (*)(void *));
PIN_TYPE(chorus_plugin_vtable, reconfigure, chorus_status (*)(void *, const char *, size_t, chorus_error *));
PIN_TYPE(chorus_plugin_vtable, drain, void (*)(void *));
PIN_TYPE(chorus_plugin_vtable, reload, void (*)(void *));

// ---- chorus_plugin_descriptor ----
PIN_STRUCT(chorus_plugin_descriptor, 144, 8);
PIN(chorus_plugin_descriptor, struct_size, 0, 4);
PIN(chorus_plugin_descriptor, abi_major, 4, 2);
PIN(chorus_plugin_descriptor, abi_minor, 6, 2);
PIN(chorus_plugin_descriptor, min_host_minor, 8, 2);
PIN(chorus_plugin_descriptor, reserved0, 10, 2);
PIN(chorus_plugin_descriptor, reserved1, 12, 4);
PIN(chorus_plugin_descriptor, flags, 16, 8);
PIN(chorus_plugin_descriptor, id, 24, 8);
PIN(chorus_plugin_descriptor, version, 32, 8);
PIN(chorus_plugin_descriptor, description, 40, 8);
PIN(chorus_plugin_descriptor, vendor, 48, 8);
PIN(chorus_plugin_descriptor, license, 56, 8);
PIN(chorus_plugin_descriptor, provides, 64, 8);
PIN(chorus_plugin_descriptor, provides_count, 72, 4);
PIN(chorus_plugin_descriptor, requirements_count, 76, 4);
PIN(chorus_plugin_descriptor, requirements, 80, 8);
PIN(chorus_plugin_descriptor, config_schema_json, 88, 8);
PIN(chorus_plugin_descriptor, vtable, 96, 8);
PIN(chorus_plugin_descriptor, build_info, 104, 8);
PIN(chorus_plugin_descriptor, reserved, 112, 32);
PIN_TYPE(chorus_plugin_descriptor, struct_size, uint32_t);
PIN_TYPE(chorus_plugin_descriptor, abi_major, uint16_t);
PIN_TYPE(chorus_plugin_descriptor, abi_minor, uint16_t);
PIN_TYPE(chorus_plugin_descriptor, min_host_minor, uint16_t);
PIN_TYPE(chorus_plugin_descriptor, reserved0, uint16_t);
PIN_TYPE(chorus_plugin_descriptor, reserved1, uint32_t);
PIN_TYPE(chorus_plugin_descriptor, flags, uint64_t);
PIN_TYPE(chorus_plugin_descriptor, id, const char *);
PIN_TYPE(chorus_plugin_descriptor, version, const char *);
PIN_TYPE(chorus_plugin_descriptor, description, const char *);
PIN_TYPE(chorus_plugin_descriptor, vendor, const char *);
PIN_TYPE(chorus_plugin_descriptor, license, const char *);
PIN_TYPE(chorus_plugin_descriptor, provides, const chorus_provide *);
PIN_TYPE(chorus_plugin_descriptor, provides_count, uint32_t);
PIN_TYPE(chorus_plugin_descriptor, requirements_count, uint32_t);
PIN_TYPE(chorus_plugin_descriptor, requirements, const chorus_require *);
PIN_TYPE(chorus_plugin_descriptor, config_schema_json, const char *);
PIN_TYPE(chorus_plugin_descriptor, vtable, const chorus_plugin_vtable *);
PIN_TYPE(chorus_plugin_descriptor, build_info, const char *);
PIN_TYPE(chorus_plugin_descriptor, reserved, const void *[4]);

// ---- chorus_abi_info ----
PIN_STRUCT(chorus_abi_info, 24, 8);
PIN(chorus_abi_info, struct_size, 0, 4);
PIN(chorus_abi_info, major, 4, 2);
PIN(chorus_abi_info, minor, 6, 2);
PIN(chorus_abi_info, host_name, 8, 8);
PIN(chorus_abi_info, host_version, 16, 8);
PIN_TYPE(chorus_abi_info, struct_size, uint32_t);
PIN_TYPE(chorus_abi_info, major, uint16_t);
PIN_TYPE(chorus_abi_info, minor, uint16_t);
PIN_TYPE(chorus_abi_info, host_name, const char *);
PIN_TYPE(chorus_abi_info, host_version, const char *);

// ---- service headers (plugin-api/include/chorus/services/): the tables and the structs they pass
// ---- are append-only like plugin.h's; every field of every struct is pinned here.

// -- p2p_host_v1.h --
static_assert(std::is_same_v<chorus_p2p_open_fn,
                             void (*)(void *, chorus_status, const chorus_p2p_stream_info *, const chorus_error *)>);
static_assert(std::is_same_v<chorus_p2p_accept_fn,
                             chorus_status (*)(void *, const chorus_p2p_stream_info *, chorus_p2p_stream_handler *)>);
static_assert(std::is_same_v<chorus_p2p_connect_fn, void (*)(void *, chorus_status, const char *, const chorus_error *)>);
static_assert(std::is_same_v<chorus_p2p_event_fn, void (*)(void *, const chorus_p2p_event *)>);

PIN_STRUCT(chorus_p2p_stream_handler, 48, 8);
PIN(chorus_p2p_stream_handler, struct_size, 0, 4);
PIN(chorus_p2p_stream_handler, reserved, 4, 4);
PIN(chorus_p2p_stream_handler, arg, 8, 8);
PIN(chorus_p2p_stream_handler, on_data, 16, 8);
PIN(chorus_p2p_stream_handler, on_eof, 24, 8);
PIN(chorus_p2p_stream_handler, on_writable, 32, 8);
PIN(chorus_p2p_stream_handler, on_closed, 40, 8);
PIN_TYPE(chorus_p2p_stream_handler, struct_size, uint32_t);
PIN_TYPE(chorus_p2p_stream_handler, reserved, uint32_t);
PIN_TYPE(chorus_p2p_stream_handler, arg, void *);
PIN_TYPE(chorus_p2p_stream_handler, on_data, void (*)(void *, uint64_t, const uint8_t *, size_t));
PIN_TYPE(chorus_p2p_stream_handler, on_eof, void (*)(void *, uint64_t));
PIN_TYPE(chorus_p2p_stream_handler, on_writable, void (*)(void *, uint64_t));
PIN_TYPE(chorus_p2p_stream_handler, on_closed, void (*)(void *, uint64_t, chorus_status, const char *));

PIN_STRUCT(chorus_p2p_stream_info, 64, 8);
PIN(chorus_p2p_stream_info, struct_size, 0, 4);
PIN(chorus_p2p_stream_info, direction, 4, 4);
PIN(chorus_p2p_stream_info, stream, 8, 8);
PIN(chorus_p2p_stream_info, connection, 16, 8);
PIN(chorus_p2p_stream_info, peer, 24, 8);
PIN(chorus_p2p_stream_info, peer_len, 32, 8);
PIN(chorus_p2p_stream_info, peer_text, 40, 8);
PIN(chorus_p2p_stream_info, protocol, 48, 8);
PIN(chorus_p2p_stream_info, remote_addr, 56, 8);
PIN_TYPE(chorus_p2p_stream_info, struct_size, uint32_t);
PIN_TYPE(chorus_p2p_stream_info, direction, uint32_t);
PIN_TYPE(chorus_p2p_stream_info, stream, uint64_t);
PIN_TYPE(chorus_p2p_stream_info, connection, uint64_t);
PIN_TYPE(chorus_p2p_stream_info, peer, const uint8_t *);
PIN_TYPE(chorus_p2p_stream_info, peer_len, size_t);
PIN_TYPE(chorus_p2p_stream_info, peer_text, const char *);
PIN_TYPE(chorus_p2p_stream_info, protocol, const char *);
PIN_TYPE(chorus_p2p_stream_info, remote_addr, const char *);

PIN_STRUCT(chorus_p2p_event, 56, 8);
PIN(chorus_p2p_event, struct_size, 0, 4);
PIN(chorus_p2p_event, type, 4, 4);
PIN(chorus_p2p_event, peer, 8, 8);
PIN(chorus_p2p_event, peer_len, 16, 8);
PIN(chorus_p2p_event, peer_text, 24, 8);
PIN(chorus_p2p_event, addr, 32, 8);
PIN(chorus_p2p_event, direction, 40, 4);
PIN(chorus_p2p_event, reserved, 44, 4);
PIN(chorus_p2p_event, identify_json, 48, 8);
PIN_TYPE(chorus_p2p_event, struct_size, uint32_t);
PIN_TYPE(chorus_p2p_event, type, uint32_t);
PIN_TYPE(chorus_p2p_event, peer, const uint8_t *);
PIN_TYPE(chorus_p2p_event, peer_len, size_t);
PIN_TYPE(chorus_p2p_event, peer_text, const char *);
PIN_TYPE(chorus_p2p_event, addr, const char *);
PIN_TYPE(chorus_p2p_event, direction, uint32_t);
PIN_TYPE(chorus_p2p_event, reserved, uint32_t);
PIN_TYPE(chorus_p2p_event, identify_json, const char *);

PIN_STRUCT(chorus_p2p_host_v1, 176, 8);
PIN(chorus_p2p_host_v1, struct_size, 0, 4);
PIN(chorus_p2p_host_v1, reserved, 4, 4);
PIN(chorus_p2p_host_v1, local_peer_id, 8, 8);
PIN(chorus_p2p_host_v1, local_public_key, 16, 8);
PIN(chorus_p2p_host_v1, sign, 24, 8);
PIN(chorus_p2p_host_v1, get_info_json, 32, 8);
PIN(chorus_p2p_host_v1, connect, 40, 8);
PIN(chorus_p2p_host_v1, disconnect, 48, 8);
PIN(chorus_p2p_host_v1, list_peers_json, 56, 8);
PIN(chorus_p2p_host_v1, is_connected, 64, 8);
PIN(chorus_p2p_host_v1, add_addrs, 72, 8);
PIN(chorus_p2p_host_v1, peer_addrs_json, 80, 8);
PIN(chorus_p2p_host_v1, set_protocol_handler, 88, 8);
PIN(chorus_p2p_host_v1, remove_protocol_handler, 96, 8);
PIN(chorus_p2p_host_v1, open_stream, 104, 8);
PIN(chorus_p2p_host_v1, write, 112, 8);
PIN(chorus_p2p_host_v1, close_write, 120, 8);
PIN(chorus_p2p_host_v1, reset, 128, 8);
PIN(chorus_p2p_host_v1, set_read_paused, 136, 8);
PIN(chorus_p2p_host_v1, subscribe, 144, 8);
PIN(chorus_p2p_host_v1, unsubscribe, 152, 8);
PIN(chorus_p2p_host_v1, ping, 160, 8);
PIN(chorus_p2p_host_v1, parse_peer_id, 168, 8);
PIN_TYPE(chorus_p2p_host_v1, struct_size, uint32_t);
PIN_TYPE(chorus_p2p_host_v1, reserved, uint32_t);
PIN_TYPE(chorus_p2p_host_v1, local_peer_id,
         chorus_status (*)(void *, uint8_t *, size_t, size_t *, char *, size_t, size_t *));
PIN_TYPE(chorus_p2p_host_v1, local_public_key, chorus_status (*)(void *, uint8_t *, size_t, size_t *));
PIN_TYPE(chorus_p2p_host_v1, sign, chorus_status (*)(void *, const uint8_t *, size_t, uint8_t *));
PIN_TYPE(chorus_p2p_host_v1, get_info_json, chorus_status (*)(void *, chorus_buf *, chorus_error *));
PIN_TYPE(chorus_p2p_host_v1, connect,
         chorus_status (*)(void *, const char *, size_t, uint32_t, chorus_p2p_connect_fn, void *, chorus_error *));
PIN_TYPE(chorus_p2p_host_v1, disconnect, chorus_status (*)(void *, const uint8_t *, size_t));
PIN_TYPE(chorus_p2p_host_v1, list_peers_json, chorus_status (*)(void *, chorus_buf *, chorus_error *));
PIN_TYPE(chorus_p2p_host_v1, is_connected, int (*)(void *, const uint8_t *, size_t));
PIN_TYPE(chorus_p2p_host_v1, add_addrs,
         chorus_status (*)(void *, const uint8_t *, size_t, const char *const *, size_t, uint64_t, chorus_error *));
PIN_TYPE(chorus_p2p_host_v1, peer_addrs_json, chorus_status (*)(void *, const uint8_t *, size_t, chorus_buf *));
PIN_TYPE(chorus_p2p_host_v1, set_protocol_handler,
         chorus_status (*)(void *, const char *, chorus_p2p_accept_fn, void *, chorus_error *));
PIN_TYPE(chorus_p2p_host_v1, remove_protocol_handler, chorus_status (*)(void *, const char *));
PIN_TYPE(chorus_p2p_host_v1, open_stream,
         chorus_status (*)(void *, const uint8_t *, size_t, const char *const *, size_t,
                           const chorus_p2p_stream_handler *, uint32_t, chorus_p2p_open_fn, void *, chorus_error *));
PIN_TYPE(chorus_p2p_host_v1, write, chorus_status (*)(void *, uint64_t, const uint8_t *, size_t));
PIN_TYPE(chorus_p2p_host_v1, close_write, chorus_status (*)(void *, uint64_t));
PIN_TYPE(chorus_p2p_host_v1, reset, chorus_status (*)(void *, uint64_t));
PIN_TYPE(chorus_p2p_host_v1, set_read_paused, chorus_status (*)(void *, uint64_t, int));
PIN_TYPE(chorus_p2p_host_v1, subscribe, chorus_status (*)(void *, chorus_p2p_event_fn, void *, uint64_t *));
PIN_TYPE(chorus_p2p_host_v1, unsubscribe, chorus_status (*)(void *, uint64_t));
PIN_TYPE(chorus_p2p_host_v1, ping,
         chorus_status (*)(void *, const uint8_t *, size_t, uint32_t,
                           void (*)(void *, chorus_status, uint64_t, const chorus_error *), void *, chorus_error *));
PIN_TYPE(chorus_p2p_host_v1, parse_peer_id,
         chorus_status (*)(void *, const char *, size_t, uint8_t *, size_t, size_t *));

// -- discovery_v1.h --
static_assert(std::is_same_v<chorus_discovery_fn, void (*)(void *, const chorus_discovery_event *)>);

PIN_STRUCT(chorus_discovery_event, 64, 8);
PIN(chorus_discovery_event, struct_size, 0, 4);
PIN(chorus_discovery_event, type, 4, 4);
PIN(chorus_discovery_event, peer, 8, 8);
PIN(chorus_discovery_event, peer_len, 16, 8);
PIN(chorus_discovery_event, peer_text, 24, 8);
PIN(chorus_discovery_event, addrs, 32, 8);
PIN(chorus_discovery_event, addr_count, 40, 8);
PIN(chorus_discovery_event, source, 48, 8);
PIN(chorus_discovery_event, ttl_s, 56, 4);
PIN(chorus_discovery_event, reserved, 60, 4);
PIN_TYPE(chorus_discovery_event, struct_size, uint32_t);
PIN_TYPE(chorus_discovery_event, type, uint32_t);
PIN_TYPE(chorus_discovery_event, peer, const uint8_t *);
PIN_TYPE(chorus_discovery_event, peer_len, size_t);
PIN_TYPE(chorus_discovery_event, peer_text, const char *);
PIN_TYPE(chorus_discovery_event, addrs, const char *const *);
PIN_TYPE(chorus_discovery_event, addr_count, size_t);
PIN_TYPE(chorus_discovery_event, source, const char *);
PIN_TYPE(chorus_discovery_event, ttl_s, uint32_t);
PIN_TYPE(chorus_discovery_event, reserved, uint32_t);

PIN_STRUCT(chorus_discovery_v1, 32, 8);
PIN(chorus_discovery_v1, struct_size, 0, 4);
PIN(chorus_discovery_v1, reserved, 4, 4);
PIN(chorus_discovery_v1, subscribe, 8, 8);
PIN(chorus_discovery_v1, unsubscribe, 16, 8);
PIN(chorus_discovery_v1, list_peers_json, 24, 8);
PIN_TYPE(chorus_discovery_v1, struct_size, uint32_t);
PIN_TYPE(chorus_discovery_v1, reserved, uint32_t);
PIN_TYPE(chorus_discovery_v1, subscribe, chorus_status (*)(void *, chorus_discovery_fn, void *, uint64_t *));
PIN_TYPE(chorus_discovery_v1, unsubscribe, chorus_status (*)(void *, uint64_t));
PIN_TYPE(chorus_discovery_v1, list_peers_json, chorus_status (*)(void *, chorus_buf *, chorus_error *));

// -- backbeat_v1.h --
static_assert(std::is_same_v<chorus_backbeat_budget_fn, chorus_status (*)(void *, chorus_error *)>);

PIN_STRUCT(chorus_backbeat_status, 56, 8);
PIN(chorus_backbeat_status, struct_size, 0, 4);
PIN(chorus_backbeat_status, enabled, 4, 1);
PIN(chorus_backbeat_status, started, 5, 1);
PIN(chorus_backbeat_status, connected, 6, 1);
PIN(chorus_backbeat_status, local_degradation, 7, 1);
PIN(chorus_backbeat_status, current_beat, 8, 8);
PIN(chorus_backbeat_status, current_tempo_bpm, 16, 8);
PIN(chorus_backbeat_status, measured_bpm, 24, 8);
PIN(chorus_backbeat_status, tempo_drift, 32, 4);
PIN(chorus_backbeat_status, reserved, 36, 4);
PIN(chorus_backbeat_status, reconnect_count, 40, 8);
PIN(chorus_backbeat_status, active_operations, 48, 8);
PIN_TYPE(chorus_backbeat_status, struct_size, uint32_t);
PIN_TYPE(chorus_backbeat_status, enabled, uint8_t);
PIN_TYPE(chorus_backbeat_status, started, uint8_t);
PIN_TYPE(chorus_backbeat_status, connected, uint8_t);
PIN_TYPE(chorus_backbeat_status, local_degradation, uint8_t);
PIN_TYPE(chorus_backbeat_status, current_beat, int64_t);
PIN_TYPE(chorus_backbeat_status, current_tempo_bpm, double);
PIN_TYPE(chorus_backbeat_status, measured_bpm, double);
PIN_TYPE(chorus_backbeat_status, tempo_drift, int32_t);
PIN_TYPE(chorus_backbeat_status, reserved, uint32_t);
PIN_TYPE(chorus_backbeat_status, reconnect_count, uint64_t);
PIN_TYPE(chorus_backbeat_status, active_operations, uint64_t);

PIN_STRUCT(chorus_backbeat_v1, 64, 8);
PIN(chorus_backbeat_v1, struct_size, 0, 4);
PIN(chorus_backbeat_v1, reserved, 4, 4);
PIN(chorus_backbeat_v1, start_operation, 8, 8);
PIN(chorus_backbeat_v1, update_phase, 16, 8);
PIN(chorus_backbeat_v1, complete_operation, 24, 8);
PIN(chorus_backbeat_v1, fail_operation, 32, 8);
PIN(chorus_backbeat_v1, execute_with_beat_budget, 40, 8);
PIN(chorus_backbeat_v1, get_health, 48, 8);
PIN(chorus_backbeat_v1, get_status, 56, 8);
PIN_TYPE(chorus_backbeat_v1, struct_size, uint32_t);
PIN_TYPE(chorus_backbeat_v1, reserved, uint32_t);
PIN_TYPE(chorus_backbeat_v1, start_operation,
         chorus_status (*)(void *, const char *, size_t, const char *, size_t, uint32_t, const char *, size_t,
                           chorus_error *));
PIN_TYPE(chorus_backbeat_v1, update_phase,
         chorus_status (*)(void *, const char *, size_t, int32_t, uint32_t, chorus_error *));
PIN_TYPE(chorus_backbeat_v1, complete_operation,
         chorus_status (*)(void *, const char *, size_t, uint32_t, chorus_error *));
PIN_TYPE(chorus_backbeat_v1, fail_operation,
         chorus_status (*)(void *, const char *, size_t, const char *, size_t, chorus_error *));
PIN_TYPE(chorus_backbeat_v1, execute_with_beat_budget,
         chorus_status (*)(void *, uint32_t, chorus_backbeat_budget_fn, void *, chorus_error *));
PIN_TYPE(chorus_backbeat_v1, get_health, chorus_status (*)(void *, chorus_buf *, chorus_error *));
PIN_TYPE(chorus_backbeat_v1, get_status, chorus_status (*)(void *, chorus_backbeat_status *));

// -- election_v1.h --
static_assert(std::is_same_v<chorus_election_watch_fn, void (*)(void *, const chorus_election_change *)>);

PIN_STRUCT(chorus_election_change, 40, 8);
PIN(chorus_election_change, struct_size, 0, 4);
PIN(chorus_election_change, is_admin, 4, 4);
PIN(chorus_election_change, admin_id, 8, 8);
PIN(chorus_election_change, term, 16, 8);
PIN(chorus_election_change, since_unix_ms, 24, 8);
PIN_TYPE(chorus_election_change, struct_size, uint32_t);
PIN_TYPE(chorus_election_change, is_admin, int32_t);
PIN_TYPE(chorus_election_change, admin_id, const char *);
PIN_TYPE(chorus_election_change, term, uint64_t);
PIN_TYPE(chorus_election_change, since_unix_ms, uint64_t);
PIN(chorus_election_change, previous_admin_id, 32, 8);  // 1.1
PIN_TYPE(chorus_election_change, previous_admin_id, const char *);

PIN_STRUCT(chorus_election_v1, 40, 8);
PIN(chorus_election_v1, struct_size, 0, 4);
PIN(chorus_election_v1, reserved, 4, 4);
PIN(chorus_election_v1, is_admin, 8, 8);
PIN(chorus_election_v1, get_admin_json, 16, 8);
PIN(chorus_election_v1, watch_admin, 24, 8);
PIN(chorus_election_v1, unwatch_admin, 32, 8);
PIN_TYPE(chorus_election_v1, struct_size, uint32_t);
PIN_TYPE(chorus_election_v1, reserved, uint32_t);
PIN_TYPE(chorus_election_v1, is_admin, chorus_status (*)(void *, int32_t *, chorus_error *));
PIN_TYPE(chorus_election_v1, get_admin_json, chorus_status (*)(void *, chorus_buf *, chorus_error *));
PIN_TYPE(chorus_election_v1, watch_admin,
         chorus_status (*)(void *, chorus_election_watch_fn, void *, void (*)(void *), uint64_t *, chorus_error *));
PIN_TYPE(chorus_election_v1, unwatch_admin, chorus_status (*)(void *, uint64_t, chorus_error *));

// -- eventlog_v1.h --
static_assert(std::is_same_v<chorus_eventlog_append_fn, void (*)(void *, chorus_status, uint64_t, const chorus_error *)>);
static_assert(CHORUS_EVENTLOG_TYPE_MAX == 64 && CHORUS_EVENTLOG_DATA_MAX == 65536);
static_assert(CHORUS_EVENTLOG_QUERY_DEFAULT == 100 && CHORUS_EVENTLOG_QUERY_MAX == 1000);

PIN_STRUCT(chorus_eventlog_v1, 40, 8);
PIN(chorus_eventlog_v1, struct_size, 0, 4);
PIN(chorus_eventlog_v1, reserved, 4, 4);
PIN(chorus_eventlog_v1, append, 8, 8);
PIN(chorus_eventlog_v1, append_async, 16, 8);
PIN(chorus_eventlog_v1, query_json, 24, 8);
PIN(chorus_eventlog_v1, head_json, 32, 8);
PIN_TYPE(chorus_eventlog_v1, struct_size, uint32_t);
PIN_TYPE(chorus_eventlog_v1, reserved, uint32_t);
PIN_TYPE(chorus_eventlog_v1, append,
         chorus_status (*)(void *, const char *, size_t, const char *, size_t, uint64_t *, chorus_error *));
PIN_TYPE(chorus_eventlog_v1, append_async, chorus_status (*)(void *, const char *, size_t, const char *, size_t,
                                                             chorus_eventlog_append_fn, void *, chorus_error *));
PIN_TYPE(chorus_eventlog_v1, query_json,
         chorus_status (*)(void *, uint64_t, uint64_t, const char *, size_t, uint32_t, chorus_buf *, chorus_error *));
PIN_TYPE(chorus_eventlog_v1, head_json, chorus_status (*)(void *, chorus_buf *, chorus_error *));

// -- ai_provider_v1.h --
PIN_STRUCT(chorus_ai_sink, 40, 8);
PIN(chorus_ai_sink, struct_size, 0, 4);
PIN(chorus_ai_sink, reserved, 4, 4);
PIN(chorus_ai_sink, user, 8, 8);
PIN(chorus_ai_sink, on_chunk, 16, 8);
PIN(chorus_ai_sink, on_done, 24, 8);
PIN(chorus_ai_sink, on_error, 32, 8);
PIN_TYPE(chorus_ai_sink, struct_size, uint32_t);
PIN_TYPE(chorus_ai_sink, reserved, uint32_t);
PIN_TYPE(chorus_ai_sink, user, void *);
PIN_TYPE(chorus_ai_sink, on_chunk, void (*)(void *, const char *, size_t));
PIN_TYPE(chorus_ai_sink, on_done, void (*)(void *, const char *, size_t));
PIN_TYPE(chorus_ai_sink, on_error, void (*)(void *, chorus_status, const char *, size_t));

PIN_STRUCT(chorus_ai_provider_v1, 48, 8);
PIN(chorus_ai_provider_v1, struct_size, 0, 4);
PIN(chorus_ai_provider_v1, reserved, 4, 4);
PIN(chorus_ai_provider_v1, chat, 8, 8);
PIN(chorus_ai_provider_v1, generate, 16, 8);
PIN(chorus_ai_provider_v1, list_models, 24, 8);
PIN(chorus_ai_provider_v1, cancel, 32, 8);
PIN(chorus_ai_provider_v1, health, 40, 8);
PIN_TYPE(chorus_ai_provider_v1, struct_size, uint32_t);
PIN_TYPE(chorus_ai_provider_v1, reserved, uint32_t);
PIN_TYPE(chorus_ai_provider_v1, chat,
         chorus_status (*)(void *, const char *, size_t, const chorus_ai_sink *, uint64_t *, chorus_error *));
PIN_TYPE(chorus_ai_provider_v1, generate,
         chorus_status (*)(void *, const char *, size_t, const chorus_ai_sink *, uint64_t *, chorus_error *));
PIN_TYPE(chorus_ai_provider_v1, list_models,
         chorus_status (*)(void *, const chorus_ai_sink *, uint64_t *, chorus_error *));
PIN_TYPE(chorus_ai_provider_v1, cancel, chorus_status (*)(void *, uint64_t));
PIN_TYPE(chorus_ai_provider_v1, health, chorus_status (*)(void *, chorus_buf *, chorus_error *));

// -- license_v1.h --
PIN_STRUCT(chorus_license_status, 168, 8);
PIN(chorus_license_status, struct_size, 0, 4);
PIN(chorus_license_status, valid, 4, 1);
PIN(chorus_license_status, reserved0, 5, 3);
PIN(chorus_license_status, state, 8, 4);
PIN(chorus_license_status, reserved1, 12, 4);
PIN(chorus_license_status, expires_at_unix_ms, 16, 8);
PIN(chorus_license_status, grace_until_unix_ms, 24, 8);
PIN(chorus_license_status, validated_at_unix_ms, 32, 8);
PIN(chorus_license_status, license_id, 40, 128);
PIN_TYPE(chorus_license_status, struct_size, uint32_t);
PIN_TYPE(chorus_license_status, valid, uint8_t);
PIN_TYPE(chorus_license_status, state, int32_t);
PIN_TYPE(chorus_license_status, expires_at_unix_ms, int64_t);
PIN_TYPE(chorus_license_status, grace_until_unix_ms, int64_t);
PIN_TYPE(chorus_license_status, validated_at_unix_ms, int64_t);
PIN_TYPE(chorus_license_status, license_id, char[128]);
static_assert(CHORUS_LICENSE_STATE_VALID == 0 && CHORUS_LICENSE_STATE_GRACE == 1 && CHORUS_LICENSE_STATE_INVALID == 2);

PIN_STRUCT(chorus_license_v1, 24, 8);
PIN(chorus_license_v1, struct_size, 0, 4);
PIN(chorus_license_v1, reserved, 4, 4);
PIN(chorus_license_v1, status, 8, 8);
PIN(chorus_license_v1, status_json, 16, 8);
PIN_TYPE(chorus_license_v1, status, chorus_status (*)(void *, chorus_license_status *));
PIN_TYPE(chorus_license_v1, status_json, chorus_status (*)(void *, chorus_buf *, chorus_error *));

// -- reasoning_v1.h --
PIN_STRUCT(chorus_reasoning_v1, 32, 8);
PIN(chorus_reasoning_v1, struct_size, 0, 4);
PIN(chorus_reasoning_v1, reserved, 4, 4);
PIN(chorus_reasoning_v1, complete, 8, 8);
PIN(chorus_reasoning_v1, cancel, 16, 8);
PIN(chorus_reasoning_v1, system_prompt, 24, 8);
PIN_TYPE(chorus_reasoning_v1, struct_size, uint32_t);
PIN_TYPE(chorus_reasoning_v1, reserved, uint32_t);
PIN_TYPE(chorus_reasoning_v1, complete,
         chorus_status (*)(void *, const char *, size_t, const chorus_ai_sink *, uint64_t *, chorus_error *));
PIN_TYPE(chorus_reasoning_v1, cancel, chorus_status (*)(void *, uint64_t));
PIN_TYPE(chorus_reasoning_v1, system_prompt, chorus_status (*)(void *, chorus_buf *, chorus_error *));

// -- pubsub_v1.h --
static_assert(std::is_same_v<chorus_pubsub_message_fn, void (*)(void *, const chorus_pubsub_message *)>);
static_assert(std::is_same_v<chorus_pubsub_validator_fn, int (*)(void *, const chorus_pubsub_message *)>);

PIN_STRUCT(chorus_pubsub_message, 104, 8);
PIN(chorus_pubsub_message, struct_size, 0, 4);
PIN(chorus_pubsub_message, local, 4, 4);
PIN(chorus_pubsub_message, topic, 8, 8);
PIN(chorus_pubsub_message, data, 16, 8);
PIN(chorus_pubsub_message, data_len, 24, 8);
PIN(chorus_pubsub_message, from, 32, 8);
PIN(chorus_pubsub_message, from_len, 40, 8);
PIN(chorus_pubsub_message, from_text, 48, 8);
PIN(chorus_pubsub_message, seqno, 56, 8);
PIN(chorus_pubsub_message, seqno_len, 64, 8);
PIN(chorus_pubsub_message, message_id, 72, 8);
PIN(chorus_pubsub_message, message_id_len, 80, 8);
PIN(chorus_pubsub_message, received_from, 88, 8);
PIN(chorus_pubsub_message, type, 96, 8);
PIN_TYPE(chorus_pubsub_message, struct_size, uint32_t);
PIN_TYPE(chorus_pubsub_message, local, uint32_t);
PIN_TYPE(chorus_pubsub_message, topic, const char *);
PIN_TYPE(chorus_pubsub_message, data, const uint8_t *);
PIN_TYPE(chorus_pubsub_message, data_len, size_t);
PIN_TYPE(chorus_pubsub_message, from, const uint8_t *);
PIN_TYPE(chorus_pubsub_message, from_len, size_t);
PIN_TYPE(chorus_pubsub_message, from_text, const char *);
PIN_TYPE(chorus_pubsub_message, seqno, const uint8_t *);
PIN_TYPE(chorus_pubsub_message, seqno_len, size_t);
PIN_TYPE(chorus_pubsub_message, message_id, const uint8_t *);
PIN_TYPE(chorus_pubsub_message, message_id_len, size_t);
PIN_TYPE(chorus_pubsub_message, received_from, const char *);
PIN_TYPE(chorus_pubsub_message, type, const char *);

PIN_STRUCT(chorus_pubsub_v1, 88, 8);
PIN(chorus_pubsub_v1, struct_size, 0, 4);
PIN(chorus_pubsub_v1, reserved, 4, 4);
PIN(chorus_pubsub_v1, subscribe, 8, 8);
PIN(chorus_pubsub_v1, unsubscribe, 16, 8);
PIN(chorus_pubsub_v1, join, 24, 8);
PIN(chorus_pubsub_v1, leave, 32, 8);
PIN(chorus_pubsub_v1, publish, 40, 8);
PIN(chorus_pubsub_v1, publish_raw, 48, 8);
PIN(chorus_pubsub_v1, add_validator, 56, 8);
PIN(chorus_pubsub_v1, remove_validator, 64, 8);
PIN(chorus_pubsub_v1, topics_json, 72, 8);
PIN(chorus_pubsub_v1, peers_json, 80, 8);
PIN_TYPE(chorus_pubsub_v1, struct_size, uint32_t);
PIN_TYPE(chorus_pubsub_v1, reserved, uint32_t);
PIN_TYPE(chorus_pubsub_v1, subscribe,
         chorus_status (*)(void *, const char *, chorus_pubsub_message_fn, void *, uint64_t *, chorus_error *));
PIN_TYPE(chorus_pubsub_v1, unsubscribe, chorus_status (*)(void *, uint64_t));
PIN_TYPE(chorus_pubsub_v1, join, chorus_status (*)(void *, const char *, chorus_error *));
PIN_TYPE(chorus_pubsub_v1, leave, chorus_status (*)(void *, const char *, chorus_error *));
PIN_TYPE(chorus_pubsub_v1, publish,
         chorus_status (*)(void *, const char *, const char *, const char *, size_t, uint8_t *, size_t, size_t *,
                           chorus_error *));
PIN_TYPE(chorus_pubsub_v1, publish_raw,
         chorus_status (*)(void *, const char *, const uint8_t *, size_t, uint8_t *, size_t, size_t *, chorus_error *));
PIN_TYPE(chorus_pubsub_v1, add_validator,
         chorus_status (*)(void *, const char *, chorus_pubsub_validator_fn, void *, uint64_t *, chorus_error *));
PIN_TYPE(chorus_pubsub_v1, remove_validator, chorus_status (*)(void *, uint64_t));
PIN_TYPE(chorus_pubsub_v1, topics_json, chorus_status (*)(void *, chorus_buf *, chorus_error *));
PIN_TYPE(chorus_pubsub_v1, peers_json, chorus_status (*)(void *, chorus_buf *, chorus_error *));

// -- dht_v1.h --
static_assert(std::is_same_v<chorus_dht_done_fn,
                             void (*)(void *, chorus_status, const chorus_error *, const uint8_t *, size_t)>);

PIN_STRUCT(chorus_dht_v1, 80, 8);
PIN(chorus_dht_v1, struct_size, 0, 4);
PIN(chorus_dht_v1, reserved, 4, 4);
PIN(chorus_dht_v1, put_value, 8, 8);
PIN(chorus_dht_v1, get_value, 16, 8);
PIN(chorus_dht_v1, provide, 24, 8);
PIN(chorus_dht_v1, stop_providing, 32, 8);
PIN(chorus_dht_v1, find_providers, 40, 8);
PIN(chorus_dht_v1, find_peer, 48, 8);
PIN(chorus_dht_v1, store, 56, 8);
PIN(chorus_dht_v1, retrieve, 64, 8);
PIN(chorus_dht_v1, routing_json, 72, 8);
PIN_TYPE(chorus_dht_v1, struct_size, uint32_t);
PIN_TYPE(chorus_dht_v1, reserved, uint32_t);
PIN_TYPE(chorus_dht_v1, put_value,
         chorus_status (*)(void *, const uint8_t *, size_t, const uint8_t *, size_t, uint32_t, chorus_dht_done_fn,
                           void *, chorus_error *));
PIN_TYPE(chorus_dht_v1, get_value,
         chorus_status (*)(void *, const uint8_t *, size_t, uint32_t, chorus_dht_done_fn, void *, chorus_error *));
PIN_TYPE(chorus_dht_v1, provide,
         chorus_status (*)(void *, const uint8_t *, size_t, uint32_t, chorus_dht_done_fn, void *, chorus_error *));
PIN_TYPE(chorus_dht_v1, stop_providing, chorus_status (*)(void *, const uint8_t *, size_t));
PIN_TYPE(chorus_dht_v1, find_providers,
         chorus_status (*)(void *, const uint8_t *, size_t, uint32_t, uint32_t, chorus_dht_done_fn, void *,
                           chorus_error *));
PIN_TYPE(chorus_dht_v1, find_peer,
         chorus_status (*)(void *, const uint8_t *, size_t, uint32_t, chorus_dht_done_fn, void *, chorus_error *));
PIN_TYPE(chorus_dht_v1, store,
         chorus_status (*)(void *, const char *, const char *, const uint8_t *, size_t, uint32_t, chorus_dht_done_fn,
                           void *, chorus_error *));
PIN_TYPE(chorus_dht_v1, retrieve,
         chorus_status (*)(void *, const char *, uint32_t, chorus_dht_done_fn, void *, chorus_error *));
PIN_TYPE(chorus_dht_v1, routing_json, chorus_status (*)(void *, chorus_buf *, chorus_error *));

// -- ucxi_v1.h --
static_assert(std::is_same_v<chorus_ucxi_done_fn, void (*)(void *, chorus_status, const chorus_error *, const char *,
                                                           size_t, const uint8_t *, size_t)>);

PIN_STRUCT(chorus_ucxi_v1, 40, 8);
PIN(chorus_ucxi_v1, struct_size, 0, 4);
PIN(chorus_ucxi_v1, reserved, 4, 4);
PIN(chorus_ucxi_v1, put, 8, 8);
PIN(chorus_ucxi_v1, get, 16, 8);
PIN(chorus_ucxi_v1, publish_decision, 24, 8);
PIN(chorus_ucxi_v1, parse_address, 32, 8);
PIN_TYPE(chorus_ucxi_v1, struct_size, uint32_t);
PIN_TYPE(chorus_ucxi_v1, reserved, uint32_t);
PIN_TYPE(chorus_ucxi_v1, put,
         chorus_status (*)(void *, const char *, const char *, const uint8_t *, size_t, uint32_t, chorus_ucxi_done_fn,
                           void *, chorus_error *));
PIN_TYPE(chorus_ucxi_v1, get,
         chorus_status (*)(void *, const char *, uint32_t, chorus_ucxi_done_fn, void *, chorus_error *));
PIN_TYPE(chorus_ucxi_v1, publish_decision,
         chorus_status (*)(void *, const char *, uint32_t, chorus_ucxi_done_fn, void *, chorus_error *));
PIN_TYPE(chorus_ucxi_v1, parse_address, chorus_status (*)(void *, const char *, chorus_buf *, chorus_error *));

#endif  // LP64 x86_64 / aarch64

// ---- constants (all platforms) ----
static_assert(CHORUS_ABI_MAJOR == 1);
static_assert(CHORUS_ABI_MINOR == 2);  // 1.1: vtable.reload; 1.2: host_api.redact
static_assert(CHORUS_REDACT_CHANNEL_LOG == 0 && CHORUS_REDACT_CHANNEL_PUBSUB == 1 && CHORUS_REDACT_CHANNEL_UCXI == 2);
static_assert(CHORUS_REDACT_TEXT == 0 && CHORUS_REDACT_JSON == 1);
static_assert(CHORUS_OK == 0);
static_assert(CHORUS_E_INVALID_ARG == -1);
static_assert(CHORUS_E_NOT_FOUND == -2);
static_assert(CHORUS_E_UNSUPPORTED == -3);
static_assert(CHORUS_E_VERSION == -4);
static_assert(CHORUS_E_CONFIG == -5);
static_assert(CHORUS_E_UNAVAILABLE == -6);
static_assert(CHORUS_E_BUSY == -7);
static_assert(CHORUS_E_TIMEOUT == -8);
static_assert(CHORUS_E_CANCELLED == -9);
static_assert(CHORUS_E_NO_MEMORY == -10);
static_assert(CHORUS_E_IO == -11);
static_assert(CHORUS_E_INTERNAL == -12);
static_assert(CHORUS_E_NEEDS_RESTART == -13);
static_assert(CHORUS_E_EXISTS == -14);
static_assert(CHORUS_E_TOO_LARGE == -15);
static_assert(CHORUS_E_PROTOCOL == -16);
static_assert(CHORUS_E_SERVICE_BASE == 1000);
static_assert(CHORUS_ERROR_MESSAGE_MAX == 512);

static_assert(CHORUS_PROVIDE_SWAPPABLE == 0x1u);
static_assert(CHORUS_REQUIRE_OPTIONAL == 0x1u);
static_assert(CHORUS_REQUIRE_LATE == 0x2u);

static_assert(CHORUS_LOG_TRACE == 0);
static_assert(CHORUS_LOG_DEBUG == 1);
static_assert(CHORUS_LOG_INFO == 2);
static_assert(CHORUS_LOG_WARN == 3);
static_assert(CHORUS_LOG_ERROR == 4);

static_assert(CHORUS_HEALTH_OK == 0);
static_assert(CHORUS_HEALTH_DEGRADED == 1);
static_assert(CHORUS_HEALTH_UNHEALTHY == 2);

static_assert(CHORUS_METRIC_COUNTER == 0);
static_assert(CHORUS_METRIC_GAUGE == 1);
static_assert(CHORUS_METRIC_HISTOGRAM == 2);
static_assert(CHORUS_METRIC_ADD == 0);
static_assert(CHORUS_METRIC_SET == 1);
static_assert(CHORUS_METRIC_OBSERVE == 2);

static_assert(CHORUS_SERVICE_AVAILABLE == 0);
static_assert(CHORUS_SERVICE_CHANGED == 1);
static_assert(CHORUS_SERVICE_GONE == 2);

static_assert(CHORUS_ROUTE_EXACT == 0x0u);
static_assert(CHORUS_ROUTE_PREFIX == 0x1u);

// Service constants: names, versions and the values callers pass or receive.
static_assert(std::string_view(CHORUS_PUBSUB_SERVICE) == "chorus.pubsub");
static_assert(std::string_view(CHORUS_DHT_SERVICE) == "chorus.dht");
static_assert(CHORUS_DHT_V1_MAJOR == 1 && CHORUS_DHT_V1_MINOR == 0);
static_assert(CHORUS_DHT_KEY_MAX == 1024);
static_assert(CHORUS_E_DHT_NOT_AUTHORISED == 1001 && CHORUS_E_DHT_INTEGRITY == 1002);
static_assert(std::string_view(CHORUS_UCXI_SERVICE) == "chorus.ucxi");
static_assert(CHORUS_UCXI_V1_MAJOR == 1 && CHORUS_UCXI_V1_MINOR == 0);
static_assert(CHORUS_E_UCXI_TEMPORAL == 1001 && CHORUS_E_UCXI_NOT_AUTHORISED == 1002);
static_assert(CHORUS_PUBSUB_V1_MAJOR == 1 && CHORUS_PUBSUB_V1_MINOR == 0);
static_assert(CHORUS_PUBSUB_TOPIC_MAX == 1024);
static_assert(CHORUS_PUBSUB_ACCEPT == 0 && CHORUS_PUBSUB_REJECT == 1 && CHORUS_PUBSUB_IGNORE == 2);
static_assert(std::string_view(CHORUS_PUBSUB_TOPIC_COORDINATION) == "CHORUS/coordination/v1");
static_assert(std::string_view(CHORUS_PUBSUB_TOPIC_HMMM) == "hmmm/meta-discussion/v1");
static_assert(std::string_view(CHORUS_PUBSUB_TOPIC_CONTEXT_FEEDBACK) == "CHORUS/context-feedback/v1");
static_assert(std::string_view(CHORUS_P2P_HOST_SERVICE) == "chorus.p2p.host");
static_assert(CHORUS_P2P_HOST_V1_MAJOR == 1 && CHORUS_P2P_HOST_V1_MINOR == 0);
static_assert(CHORUS_P2P_PROTOCOL_MAX == 1023);
static_assert(CHORUS_P2P_EVENT_CONNECTED == 1 && CHORUS_P2P_EVENT_DISCONNECTED == 2 && CHORUS_P2P_EVENT_IDENTIFIED == 3);
static_assert(CHORUS_P2P_DIR_INBOUND == 0 && CHORUS_P2P_DIR_OUTBOUND == 1);

static_assert(std::string_view(CHORUS_DISCOVERY_SERVICE) == "chorus.discovery");
static_assert(CHORUS_DISCOVERY_V1_MAJOR == 1 && CHORUS_DISCOVERY_V1_MINOR == 0);
static_assert(CHORUS_DISCOVERY_PEER_FOUND == 1 && CHORUS_DISCOVERY_PEER_LOST == 2);

static_assert(std::string_view(CHORUS_BACKBEAT_SERVICE) == "chorus.backbeat");
static_assert(CHORUS_BACKBEAT_V1_MAJOR == 1 && CHORUS_BACKBEAT_V1_MINOR == 0);
static_assert(CHORUS_BACKBEAT_PHASE_STARTED == 0 && CHORUS_BACKBEAT_PHASE_CONNECTING == 1 &&
              CHORUS_BACKBEAT_PHASE_NEGOTIATING == 2 && CHORUS_BACKBEAT_PHASE_EXECUTING == 3 &&
              CHORUS_BACKBEAT_PHASE_COMPLETED == 4 && CHORUS_BACKBEAT_PHASE_FAILED == 5);
static_assert(std::string_view(CHORUS_BACKBEAT_OP_ELECTION) == "election");
static_assert(std::string_view(CHORUS_BACKBEAT_OP_DHT_STORE) == "dht_store");
static_assert(std::string_view(CHORUS_BACKBEAT_OP_PUBSUB_SYNC) == "pubsub_sync");
static_assert(std::string_view(CHORUS_BACKBEAT_OP_PEER_DISCOVERY) == "peer_discovery");
static_assert(CHORUS_BACKBEAT_OP_ID_MAX == 128 && CHORUS_BACKBEAT_MAX_BEATS == 1000);
static_assert(CHORUS_BACKBEAT_DRIFT_UNKNOWN == 0 && CHORUS_BACKBEAT_DRIFT_ACCEPTABLE == 1 &&
              CHORUS_BACKBEAT_DRIFT_MODERATE == 2 && CHORUS_BACKBEAT_DRIFT_SEVERE == 3);

static_assert(std::string_view(CHORUS_ELECTION_SERVICE) == "chorus.election");
static_assert(CHORUS_ELECTION_V1_MAJOR == 1 && CHORUS_ELECTION_V1_MINOR == 1);

static_assert(std::string_view(CHORUS_AI_PROVIDER_SERVICE) == "chorus.ai.provider");
static_assert(CHORUS_AI_PROVIDER_V1_MAJOR == 1 && CHORUS_AI_PROVIDER_V1_MINOR == 0);
static_assert(CHORUS_AI_E_UPSTREAM == 1000);

static_assert(std::string_view(CHORUS_REASONING_SERVICE) == "chorus.reasoning");
static_assert(CHORUS_REASONING_V1_MAJOR == 1 && CHORUS_REASONING_V1_MINOR == 0);

TEST(AbiLayout, ConstantsAndEntrySymbol) {
  EXPECT_EQ(std::string_view(CHORUS_PLUGIN_ENTRY_SYMBOL), "chorus_plugin_entry_v1");
  EXPECT_EQ(CHORUS_ABI_MAJOR, 1);
  EXPECT_EQ(CHORUS_E_NEEDS_RESTART, -13);
}

TEST(AbiLayout, StructSizesOnThisPlatform) {
#ifdef CHORUS_ABI_PINNED
  EXPECT_EQ(sizeof(chorus_host_api), 240u);
  EXPECT_EQ(offsetof(chorus_host_api, redact), 232u);  // a 1.0/1.1 host's table ends here
  EXPECT_EQ(sizeof(chorus_plugin_descriptor), 144u);
  EXPECT_EQ(offsetof(chorus_plugin_descriptor, vtable), 96u);
#else
  GTEST_SKIP() << "layout is pinned for LP64 x86_64/aarch64 only";
#endif
}

// CHORUS_HAS must look at struct_size before the slot: a table from an older minor is shorter.
TEST(AbiLayout, HasMacroRespectsStructSize) {
  chorus_plugin_vtable vt{};
  vt.struct_size = sizeof vt;
  vt.drain = [](void *) {};
  EXPECT_TRUE(CHORUS_HAS(chorus_plugin_vtable, &vt, drain));
  EXPECT_FALSE(CHORUS_HAS(chorus_plugin_vtable, &vt, reconfigure));  // NULL slot
  vt.struct_size = static_cast<uint32_t>(offsetof(chorus_plugin_vtable, drain));
  EXPECT_FALSE(CHORUS_HAS(chorus_plugin_vtable, &vt, drain));  // slot past the end
  EXPECT_TRUE(CHORUS_HAS_FIELD(chorus_plugin_vtable, &vt, reconfigure));
  const chorus_plugin_vtable *none = nullptr;
  EXPECT_FALSE(CHORUS_HAS(chorus_plugin_vtable, none, create));
}

}  // namespace
