/* Regression runner: feeds every file named on the command line (directories: every file in
 * them) to a fuzz target's LLVMFuzzerTestOneInput, built with the normal compiler. A crash or a
 * sanitizer report fails the test; the inputs are the seed corpus and every crash fuzzing found. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "%s: cannot open\n", path);
    return 1;
  }
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len == cap) {
      cap = cap ? 2 * cap : 65536;
      uint8_t *grown = realloc(buf, cap);
      if (!grown) {
        free(buf);
        fclose(f);
        return 1;
      }
      buf = grown;
    }
    size_t got = fread(buf + len, 1, cap - len, f);
    len += got;
    if (got == 0) break;
  }
  fclose(f);
  LLVMFuzzerTestOneInput(buf, len);
  free(buf);
  return 0;
}

static int visible(const struct dirent *e) { return e->d_name[0] != '.'; }

int main(int argc, char **argv) {
  int failed = 0, done = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "%s: no such file or directory\n", argv[i]);
      return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
      failed |= run_file(argv[i]);
      done++;
      continue;
    }
    struct dirent **names;
    int n = scandir(argv[i], &names, visible, alphasort);
    if (n < 0) {
      fprintf(stderr, "%s: cannot list\n", argv[i]);
      return 1;
    }
    for (int j = 0; j < n; j++) {
      char path[8192];
      snprintf(path, sizeof path, "%s/%s", argv[i], names[j]->d_name);
      failed |= run_file(path);
      done++;
      free(names[j]);
    }
    free(names);
  }
  printf("%d inputs run\n", done);
  return failed;
}
