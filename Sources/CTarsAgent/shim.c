#include "CTarsAgent.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>

// libsystemd is loaded the first time systemd asks for something (NOTIFY_SOCKET or
// WATCHDOG_USEC set), not linked: a DaemonSet's container never runs under systemd, and the
// library and its dependencies cost about 0.9 MiB resident. The static build (CTARS_AGENT_STATIC,
// scripts/build-agent: the image's) cannot load shared libraries at all and says so with
// -ELIBACC; the Swift side turns that into what to do.
static pthread_once_t systemd_once = PTHREAD_ONCE_INIT;
static __typeof__(sd_notify) *notify_function;
static __typeof__(sd_watchdog_enabled) *watchdog_function;

static void systemd_load(void) {
#ifndef CTARS_AGENT_STATIC
  void *library = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
  if (!library) return;
  notify_function = (__typeof__(sd_notify) *)dlsym(library, "sd_notify");
  watchdog_function = (__typeof__(sd_watchdog_enabled) *)dlsym(library, "sd_watchdog_enabled");
#endif
}

int ctars_sd_notify(const char *state) {
  if (!getenv("NOTIFY_SOCKET")) return 0;
  pthread_once(&systemd_once, systemd_load);
  return notify_function ? notify_function(0, state) : -ELIBACC;
}

uint64_t ctars_sd_watchdog_usec(void) {
  if (!getenv("WATCHDOG_USEC")) return 0;
  pthread_once(&systemd_once, systemd_load);
  uint64_t usec = 0;
  return watchdog_function && watchdog_function(0, &usec) > 0 ? usec : 0;
}

struct sink_context {
  ctars_http_sink sink;
  void *context;
};

static size_t write_body(char *data, size_t size, size_t count, void *user) {
  struct sink_context *c = user;
  size_t length = size * count;
  return c->sink(data, length, c->context) == 0 ? length : 0;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

int ctars_http(const char *method, const char *url, const char *ca_file, const char *token,
               const char *content_type, const void *body, size_t body_length, long timeout_ms,
               long low_speed_seconds, ctars_http_sink sink, void *context, long *status, char *error) {
  pthread_once(&curl_once, curl_init);
  CURL *curl = curl_easy_init();
  if (!curl) {
    snprintf(error, CURL_ERROR_SIZE, "curl_easy_init failed");
    return CURLE_FAILED_INIT;
  }
  error[0] = 0;
  struct sink_context c = {sink, context};
  struct curl_slist *headers = curl_slist_append(NULL, "Accept: application/json");
  char line[4096];
  if (token) {
    snprintf(line, sizeof line, "Authorization: Bearer %s", token);
    headers = curl_slist_append(headers, line);
  }
  if (body && content_type) {
    snprintf(line, sizeof line, "Content-Type: %s", content_type);
    headers = curl_slist_append(headers, line);
  }
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "tarsagent");
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &c);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  if (timeout_ms > 0) curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  if (low_speed_seconds > 0) {
    // A watch that stays silent this long is dead (a half-open connection): give it up.
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, low_speed_seconds);
  }
  if (ca_file) curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file);
  if (body) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)body_length);
  }
  CURLcode rc = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
  if (rc != CURLE_OK && error[0] == 0) snprintf(error, CURL_ERROR_SIZE, "%s", curl_easy_strerror(rc));
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return rc;
}
