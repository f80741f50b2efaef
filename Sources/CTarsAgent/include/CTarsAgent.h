// tarsagent's two C libraries behind plain functions Swift can call: libsystemd's sd_notify
// and libcurl's easy interface (curl_easy_setopt is variadic, which Swift cannot call).
#ifndef CTARS_AGENT_H
#define CTARS_AGENT_H

#include <stddef.h>
#include <stdint.h>

/// sd_notify(0, state): 1 when sent, 0 when not run by systemd (no NOTIFY_SOCKET), -errno;
/// -ELIBACC when libsystemd.so.0 could not be loaded (or this is the static build).
int ctars_sd_notify(const char *state);

/// The watchdog interval systemd asked for (WatchdogSec=), in microseconds; 0 when none.
uint64_t ctars_sd_watchdog_usec(void);

/// Receives response bytes as they arrive; returns 0 to go on, non-zero to stop the transfer.
typedef int (*ctars_http_sink)(const char *data, size_t length, void *context);

/// One HTTP request. `ca_file` (NULL: the system's roots) checks the server's certificate,
/// `token` (NULL: none) goes as `Authorization: Bearer`, `body` (NULL: none) with
/// `content_type`. The body arrives through `sink`; `status` gets the HTTP status. Returns 0,
/// or libcurl's error with its message in `error` (CURL_ERROR_SIZE bytes).
int ctars_http(const char *method, const char *url, const char *ca_file, const char *token,
               const char *content_type, const void *body, size_t body_length, long timeout_ms,
               long low_speed_seconds, ctars_http_sink sink, void *context, long *status, char *error);

#endif
