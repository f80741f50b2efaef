#include "CTarsAgent.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

int ctars_sd_notify(const char *state) { return sd_notify(0, state); }

uint64_t ctars_sd_watchdog_usec(void) {
  uint64_t usec = 0;
  return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
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
