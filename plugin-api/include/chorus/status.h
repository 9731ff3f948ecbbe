/*
 * chorus/status.h - the one vocabulary for status codes and chorus_error, for C and C++ alike.
 *
 * Every side of the ABI (the host, the C++ SDK, FakeHost, every plugin) names a status and fills a
 * caller-owned chorus_error through these two functions, so names, descriptions and the truncation
 * rules never disagree. Header-only (static inline): nothing here crosses the boundary as a symbol.
 */
#ifndef CHORUS_STATUS_H
#define CHORUS_STATUS_H

#include <stddef.h>
#include <string.h>

#include "chorus/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The name and the human description of one status code, in one table so they cannot drift. */
typedef struct chorus_status_text {
  const char *name;        /* "CHORUS_E_NOT_FOUND" */
  const char *description; /* "not found" */
} chorus_status_text;

static inline chorus_status_text chorus_status_lookup(chorus_status s) {
  static const chorus_status_text known[] = {
      {"CHORUS_OK", "ok"},
      {"CHORUS_E_INVALID_ARG", "invalid argument"},
      {"CHORUS_E_NOT_FOUND", "not found"},
      {"CHORUS_E_UNSUPPORTED", "unsupported"},
      {"CHORUS_E_VERSION", "version mismatch"},
      {"CHORUS_E_CONFIG", "config error"},
      {"CHORUS_E_UNAVAILABLE", "unavailable"},
      {"CHORUS_E_BUSY", "busy"},
      {"CHORUS_E_TIMEOUT", "timeout"},
      {"CHORUS_E_CANCELLED", "cancelled"},
      {"CHORUS_E_NO_MEMORY", "out of memory"},
      {"CHORUS_E_IO", "I/O error"},
      {"CHORUS_E_INTERNAL", "internal error"},
      {"CHORUS_E_NEEDS_RESTART", "needs restart"},
      {"CHORUS_E_EXISTS", "already exists"},
      {"CHORUS_E_TOO_LARGE", "too large"},
      {"CHORUS_E_PROTOCOL", "protocol error"},
  };
  static const chorus_status_text service = {"CHORUS_E_SERVICE_SPECIFIC", "service-specific error"};
  static const chorus_status_text unknown = {"CHORUS_E_UNKNOWN", "unknown status"};
  if (s <= 0 && s > -(chorus_status)(sizeof known / sizeof known[0])) return known[-s];
  return s >= CHORUS_E_SERVICE_BASE ? service : unknown;
}

/* "CHORUS_E_NOT_FOUND"; "CHORUS_E_SERVICE_SPECIFIC" for codes >= CHORUS_E_SERVICE_BASE and
 * "CHORUS_E_UNKNOWN" for anything else. */
static inline const char *chorus_status_name(chorus_status s) { return chorus_status_lookup(s).name; }

/* "not found": what chorus_host_api.status_str returns, in the real host and in FakeHost. */
static inline const char *chorus_status_describe(chorus_status s) {
  return chorus_status_lookup(s).description;
}

/* Writes code and message (len bytes, need not be NUL-terminated) into a caller-owned chorus_error.
 * Tolerates err == NULL; honours err->struct_size (an older, shorter struct gets only the fields it
 * has); truncates without splitting a UTF-8 sequence; always NUL-terminates the message. */
static inline void chorus_error_set(chorus_error *err, chorus_status code, const char *message,
                                    size_t len) {
  size_t size, cap, n;
  if (err == NULL) return;
  size = err->struct_size;
  if (size >= offsetof(chorus_error, code) + sizeof(err->code)) err->code = code;
  if (size <= offsetof(chorus_error, message)) return;
  cap = size - offsetof(chorus_error, message);
  if (cap > sizeof(err->message)) cap = sizeof(err->message);
  n = message == NULL ? 0 : len;
  if (n > cap - 1) {
    n = cap - 1;
    /* do not leave half a UTF-8 sequence at the end */
    while (n > 0 && ((unsigned char)message[n] & 0xC0u) == 0x80u) --n;
  }
  if (n > 0) memcpy(err->message, message, n);
  err->message[n] = '\0';
}

/* The same for a NUL-terminated message. */
static inline void chorus_error_set_str(chorus_error *err, chorus_status code, const char *message) {
  chorus_error_set(err, code, message, message == NULL ? 0 : strlen(message));
}

#ifdef __cplusplus
}
#endif

#endif /* CHORUS_STATUS_H */
