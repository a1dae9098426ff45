/* Output-path checks with stat(2) and access(2). */
#include "data/paths.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int kd_same_file(const char *a, const char *b) {
  struct stat sa, sb;
  if (!a || !b || stat(a, &sa) != 0 || stat(b, &sb) != 0) return 0;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int kd_check_output_path(const char *flag, const char *path, kd_error *err) {
  struct stat st;
  if (!*path) return kd_fail(err, "%s: the path is empty", flag);
  /* Outputs are replaced by rename: a device node (/dev/null), FIFO or socket there would be
   * replaced by a regular file, so they are refused like a directory. */
  if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
    return kd_fail(err, "%s %s: is %s, not a file (outputs are written to a new file and "
                   "renamed over the old one)", flag, path,
                   S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO"
                   : S_ISSOCK(st.st_mode) ? "a socket" : "a device");
  char dir[4096];
  const char *slash = strrchr(path, '/');
  if (!slash) snprintf(dir, sizeof dir, ".");
  else if (slash == path) snprintf(dir, sizeof dir, "/");
  else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  if (stat(dir, &st) != 0)
    return kd_fail(err, "%s %s: the directory %s does not exist", flag, path, dir);
  if (!S_ISDIR(st.st_mode)) return kd_fail(err, "%s %s: %s is not a directory", flag, path, dir);
  if (access(dir, W_OK) != 0)
    return kd_fail(err, "%s %s: the directory %s is not writable (%s)", flag, path, dir,
                   strerror(errno));
  return 0;
}

int kd_check_not_input(const char *out_flag, const char *out, int n, const char *const *in_flags,
                       const char *const *inputs, kd_error *err) {
  for (int i = 0; i < n; i++)
    if (inputs[i] && kd_same_file(out, inputs[i]))
      return kd_fail(err, "%s %s is the same file as %s %s: choose another output file",
                     out_flag, out, in_flags[i], inputs[i]);
  return 0;
}
