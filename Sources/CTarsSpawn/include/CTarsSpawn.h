// Starting the supervised server, in C because the child side of fork() must only make
// async-signal-safe calls before exec: no Swift runtime, no allocation.
#ifndef CTARSSPAWN_H
#define CTARSSPAWN_H

#include <sys/types.h>

/// What the child does between fork and exec, in this order: reset the signal mask and every
/// disposition to the default; optionally a new process group; redirect stdio; chdir;
/// optionally switch uid/gid; optionally drop capabilities to `keep_caps` (bounding, permitted,
/// effective, inheritable and ambient sets); optionally no_new_privs; close other descriptors;
/// execve.
typedef struct {
  const char *path;
  char *const *argv;
  /// NULL passes this process's environment on unchanged.
  char *const *envp;
  /// NULL keeps the current directory.
  const char *cwd;
  /// -1 inherits the descriptor.
  int stdin_fd;
  int stdout_fd;
  int stderr_fd;
  int new_process_group;
  /// A new session (setsid): no controlling terminal, so the parent's Ctrl-C does not reach it.
  int new_session;
  /// Start the child as PID 1 of a new PID namespace (needs CAP_SYS_ADMIN).
  int new_pid_namespace;
  /// With a new process group and a terminal on stdin: make the group the terminal's foreground
  /// group, so an interactive command can read it (what tini does).
  int foreground;
  /// Look `path` up in PATH in the child (execvp) when it has no '/'.
  int search_path;
  int no_new_privs;
  int set_ids;
  uid_t uid;
  gid_t gid;
  int drop_caps;
  const int *keep_caps;
  int keep_caps_count;
} ctars_spawn_options;

/// Starts the child. Returns its pid, or -errno when it could not be started (exec failures in
/// the child included); then `*failed_step` names the step that failed.
pid_t ctars_spawn(const ctars_spawn_options *options, const char **failed_step);

/// The capability number for a name like "cap_net_bind_service" or "NET_BIND_SERVICE", or -1.
int ctars_capability_from_name(const char *name);

#endif
