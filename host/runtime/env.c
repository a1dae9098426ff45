/* Settings from environment variables (runtime/env.h). */
#include "runtime/env.h"

#include <stdio.h>
#include <stdlib.h>

int kd_env_uint(const char *name, uint64_t max, const char *meaning, uint64_t *out, int *set,
                kd_error *err) {
  const char *v = getenv(name);
  *set = 0;
  if (!v || !*v) return 0;
  uint64_t x = 0;
  int ok = 1;
  for (const char *p = v; *p && ok; p++) {
    ok = *p >= '0' && *p <= '9';
    if (ok) {
      unsigned d = (unsigned)(*p - '0');
      ok = d <= max && x <= (max - d) / 10; /* x * 10 + d <= max */
      x = x * 10 + d;
    }
  }
  if (!ok)
    return kd_fail(err, "%s=%s: expected a whole number from 0 to %llu (%s)", name, v,
                   (unsigned long long)max, meaning);
  *out = x;
  *set = 1;
  return 0;
}

void kd_cache_dir(char *buf, size_t len) {
  const char *dir = getenv("KDCL_CACHE_DIR");
  const char *xdg = getenv("XDG_CACHE_HOME");
  const char *home = getenv("HOME");
  if (dir && *dir)
    snprintf(buf, len, "%s", dir);
  else if (xdg && *xdg)
    snprintf(buf, len, "%s/kdcl", xdg);
  else if (home && *home)
    snprintf(buf, len, "%s/.cache/kdcl", home);
  else if (len)
    buf[0] = '\0';
}
